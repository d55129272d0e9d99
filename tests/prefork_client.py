"""The test side of the fork server (tests/prefork.py): one per test process, started on first use.

`ForkServer.command(args)` is the command line a spawning client (the SDK's stdio client) runs instead of the
`genroute` script; `ForkServer.spawn(args, ...)` starts a run directly and returns a `ForkedProcess`, which
answers what tests ask of a `subprocess.Popen` (pid, poll, wait, terminate, kill) about the real server process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from tests.prefork import connect, read_line, send_request

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = Path(__file__).resolve().parent / "prefork_launch.py"
CONNECT_WITHIN_S = 60.0


class ForkedProcess:
    """A genroute run forked by the fork server, seen through its connection (which reports the exit)."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self._read_exit(0.0) if self.returncode is None else self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._read_exit(timeout) is None:
            raise subprocess.TimeoutExpired(f"genroute (pid {self.pid})", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _read_exit(self, timeout: float | None) -> int | None:
        """The exit code once the fork server reports it; None if it has not within `timeout` seconds."""
        ready, _, _ = select.select([self.conn], [], [], timeout)
        if not ready:
            return None
        line = read_line(self.conn)
        self.returncode = int(line[5:]) if line.startswith("exit ") else -signal.SIGKILL
        self.conn.close()
        return self.returncode


class ForkServer:
    """`python -m tests.prefork` for this test process, stopped when it exits."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="genroute-fork-")  # short: AF_UNIX paths are limited to 107 bytes
        self.path = os.path.join(self.directory, "fork.sock")
        self.log = Path(self.directory) / "fork-server.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.prefork", self.path],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        atexit.register(self.stop)

    def command(self, args: list[str]) -> tuple[str, list[str]]:
        """The command and arguments that run `genroute ARGS` through this fork server."""
        return sys.executable, ["-S", "-E", str(LAUNCHER), self.path, *args]

    def spawn(
        self, args: list[str], *, env: dict[str, str], stdout: IO[bytes] | int, stderr: IO[bytes] | int
    ) -> ForkedProcess:
        """`genroute ARGS` forked now, stdin from /dev/null."""
        files = [open(os.devnull, "rb")]  # closed below, once the fork server holds copies
        fds = [files[0].fileno()]
        for stream in (stdout, stderr):
            if stream == subprocess.DEVNULL:
                files.append(open(os.devnull, "wb"))
                fds.append(files[-1].fileno())
            else:
                assert not isinstance(stream, int), "pass a file object or subprocess.DEVNULL"
                fds.append(stream.fileno())
        conn = self._connect()
        try:
            pid = send_request(conn, args, env, (fds[0], fds[1], fds[2]))
        finally:
            for file in files:
                file.close()
        return ForkedProcess(conn, pid)

    def _connect(self) -> socket.socket:
        try:
            return connect(self.path, CONNECT_WITHIN_S, lambda: self.process.poll() is None)
        except OSError as error:
            log = self.log.read_text(errors="replace")
            raise RuntimeError(f"the fork server did not start: {log}") from error

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            self.log.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)


_server: ForkServer | None = None


def fork_server() -> ForkServer | None:
    """This process's fork server, started on first use; None with GENROUTE_TEST_NO_FORK=1."""
    global _server
    if os.environ.get("GENROUTE_TEST_NO_FORK") == "1":
        return None
    if _server is None:
        _server = ForkServer()
    return _server
