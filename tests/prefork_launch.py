"""`genroute ...` through the worker's fork server, for clients that spawn a command (the SDK's stdio client).

Run as `python -S -E tests/prefork_launch.py SOCKET_PATH ARGS...`: the standard library and tests/prefork.py only
(its own folder is on the path; -S -E keep site-packages and PYTHON* variables out), so it starts in ~20 ms.
It hands its own stdin/stdout/stderr to the fork server, which forks a genroute run onto them (tests/prefork.py).
It then stands in for that run: signals it receives go to the run, and it exits as the run exits (killed by the
same signal, or with the same code). If it is killed itself, the fork server sees it hang up and kills the run.
"""

from __future__ import annotations

import os
import signal
import sys

from prefork import connect, read_line, send_request  # tests/prefork.py: the standard library only, at import

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
CONNECT_WITHIN_S = 60.0  # the fork server imports the SDK before it listens: ~1-3 s, longer on a loaded machine


def main() -> None:
    path, argv = sys.argv[1], sys.argv[2:]
    conn = connect(path, CONNECT_WITHIN_S)
    try:
        pid = send_request(conn, argv, dict(os.environ), (0, 1, 2))
    except RuntimeError as error:
        sys.stderr.write(f"prefork_launch: {error}\n")
        sys.exit(1)

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
