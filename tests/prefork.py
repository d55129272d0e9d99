"""A fork server for the suite: one process per test worker imports genroute and the `mcp` SDK once, then forks a
`genroute ...` run for every server a test starts.

Why: importing the SDK (three generations of protocol types) costs about 1 s of CPU, and the suite starts ~170
servers; a fork of a process that has paid it once is serving in a fraction of that. The child is a real process
that runs `mcp_server.cli:main` (what the `genroute` console script runs) at the top level of its interpreter, with
the stdin/stdout/stderr its requester passed over the socket (SCM_RIGHTS), the requester's environment, working
directory and umask: real pipes, real sockets, the real CLI, a normal interpreter exit (atexit handlers run).
Tests that are about the installed script itself (tests/e2e/test_transports.py, test_cold_start.py, the CLI tests)
exec it; `GENROUTE_TEST_NO_FORK=1` makes every test exec it.

Protocol, one AF_UNIX stream per run: the requester sends a 4-byte length with three descriptors attached, then
that many bytes of JSON `{"argv", "env", "cwd", "umask"}`; the fork server answers `pid N\\n`, then `exit CODE\\n`
once the child has exited (negative: killed by that signal). A requester that hangs up first has its child killed
(SIGKILL), as a process whose parent was killed would be by a supervisor.

Run as `python -m tests.prefork SOCKET_PATH`; `tests/prefork_launch.py` is the stdio side, `ForkServer` the Python one.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

# What `genroute serve` imports on its way to serving (stdio or HTTP): imported once here, before any fork.
WARM_MODULES = (
    "mcp_server.cli",
    "mcp_server.cli.serve",
    "mcp_server.cli.check",
    "mcp_server.config",
    "mcp_server.gateway",
    "mcp_server.server",
    "mcp_server.http_app",
    "mcp_server.store",
    "mcp_server.providers.http",
    "mcp_server.providers.transport",
    "mcp.client",
)
HANDED_DOWN = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}
POLL_S = 0.5  # the longest the loop sleeps without a request or a child's exit: it also checks its parent is alive


def receive_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Read one run request: the JSON body and the three descriptors that came with its length prefix."""
    fds = array.array("i")
    head, ancdata, _flags, _addr = conn.recvmsg(4, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(head) != 4 or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("a run request is a 4-byte length with three descriptors")
    (length,) = struct.unpack("!I", head)
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise ValueError("the requester hung up mid-request")
        body += chunk
    return json.loads(body), list(fds)


def send_request(conn: socket.socket, argv: list[str], env: dict[str, str], fds: tuple[int, int, int]) -> int:
    """Ask for a run; the child's pid once it is forked."""
    umask = os.umask(0o077)
    os.umask(umask)
    body = json.dumps({"argv": argv, "env": env, "cwd": os.getcwd(), "umask": umask}).encode()
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    conn.sendmsg([struct.pack("!I", len(body))], ancillary)
    conn.sendall(body)
    line = read_line(conn)
    if not line.startswith("pid "):
        raise RuntimeError(f"the fork server refused the run: {line!r}")
    return int(line[4:])


def connect(path: str, within_s: float, starting: Callable[[], bool] = lambda: True) -> socket.socket:
    """A connection to the fork server at `path`, waiting while it imports (and `starting()` says it still may)."""
    deadline = time.monotonic() + within_s
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            if not starting() or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def read_line(conn: socket.socket) -> str:
    """One short line from the fork server ('' when it hung up)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


class Forker:
    """The fork server's loop: accept requests, fork children, report their exits, kill orphaned runs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.parent = os.getppid()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.runs: dict[int, socket.socket] = {}  # child pid -> its requester's connection
        self.orphans: set[int] = set()  # children killed because their requester hung up, not yet reaped
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def serve(self) -> dict[str, Any] | None:
        """Serve until the parent goes; in a forked child, return that child's request instead."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        self.listener.bind(self.path)
        self.listener.listen(64)
        try:
            while os.getppid() == self.parent:
                request = self.step()
                if request is not None:
                    return request
        finally:
            if os.getpid() == self.pid:
                self.shut_down()
        return None

    def step(self) -> dict[str, Any] | None:
        watched = [self.listener, self.wake_r, *(c for p, c in self.runs.items() if p not in self.orphans)]
        readable, _, _ = select.select(watched, [], [], POLL_S)
        for ready in readable:
            if ready is self.listener:
                request = self.accept()
                if request is not None:
                    return request
            elif ready == self.wake_r:
                os.read(self.wake_r, 512)
            else:  # a requester hung up (or spoke out of turn) before its child exited
                for pid, conn in self.runs.items():
                    if conn is ready:
                        self.orphans.add(pid)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
        self.reap()
        return None

    def accept(self) -> dict[str, Any] | None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        try:
            request, fds = receive_request(conn)
        except (OSError, ValueError) as error:
            with contextlib.suppress(OSError):
                conn.sendall(f"error {error}\n".encode())
            conn.close()
            return None
        # Signals stay pending across the fork until the child has its own handlers: one that came in between
        # would meet the fork server's handler in the child, or be dropped by Python once the child reset it.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDED_DOWN)
        pid = os.fork()
        if pid == 0:
            conn.close()
            self.become_child(fds)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDED_DOWN)  # a SIGTERM sent meanwhile ends it now
            return request
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDED_DOWN)
        for fd in fds:
            os.close(fd)
        conn.sendall(f"pid {pid}\n".encode())
        self.runs[pid] = conn
        return None

    def become_child(self, fds: list[int]) -> None:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        for conn in (self.listener, *self.runs.values()):
            conn.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.setsid()  # its own session and process group, like a process started with start_new_session

    def reap(self) -> None:
        while self.runs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.runs.pop(pid, None)
            self.orphans.discard(pid)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                conn.close()

    def shut_down(self) -> None:
        for pid in self.runs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def run_child(request: dict[str, Any]) -> None:
    """In the forked child: the requester's environment, then genroute's CLI as the console script runs it."""
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["genroute", *request["argv"]]
    from mcp_server.cli import main

    sys.exit(main(request["argv"]))


if __name__ == "__main__":
    for module in WARM_MODULES:
        __import__(module)
    gc.collect()
    gc.freeze()  # what every child shares stays out of the collector's sight (and its pages unwritten)
    child_request = Forker(sys.argv[1]).serve()
    if child_request is not None:
        run_child(child_request)
