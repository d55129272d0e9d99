"""`genroute ...` through the worker's fork server, for clients that spawn a command (the SDK's stdio client).

Run as `python -S -I tests/prefork_launch.py SOCKET_PATH ARGS...` (standard library only, so it starts in ~20 ms):
it hands its own stdin/stdout/stderr to the fork server, which forks a genroute run onto them (tests/prefork.py).
It then stands in for that run: signals it receives go to the run, and it exits as the run exits (killed by the
same signal, or with the same code). If it is killed itself, the fork server sees it hang up and kills the run.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys
import time

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
CONNECT_WITHIN_S = 60.0  # the fork server imports the SDK before it listens: ~1-3 s, longer on a loaded machine


def connect(path: str) -> socket.socket:
    deadline = time.monotonic() + CONNECT_WITHIN_S
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def read_line(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def main() -> None:
    path, argv = sys.argv[1], sys.argv[2:]
    conn = connect(path)
    umask = os.umask(0o077)
    os.umask(umask)
    body = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "umask": umask}).encode()
    fds = array.array("i", [0, 1, 2]).tobytes()
    conn.sendmsg([struct.pack("!I", len(body))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    conn.sendall(body)
    answer = read_line(conn)
    if not answer.startswith("pid "):
        sys.stderr.write(f"prefork_launch: the fork server refused the run: {answer}\n")
        sys.exit(1)
    pid = int(answer[4:])

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # the run has exited: its exit line is on its way

    for sig in FORWARDED:
        signal.signal(sig, forward)
    # The run has the pipes now; holding them here would keep the client from seeing the run's end of output.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    answer = read_line(conn)
    code = int(answer[5:]) if answer.startswith("exit ") else 1
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main()
