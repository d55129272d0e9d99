"""`serve --http` takes its port first, before anything heavy is loaded or started.

A port already in use is then one line and exit status 3, with nothing started to tear down. uvicorn binds only
after the app's startup: a busy port used to print uvicorn's error after "Application startup complete", and about
one such exit in ten died of SIGSEGV (the CA-store thread racing OpenSSL's cleanup at exit: providers/http.py).
Light on purpose: the standard library only, so `genroute` can call it before importing pydantic or the SDK.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

STARTUP_FAILURE = 3  # uvicorn's exit status when the server never started
BACKLOG = 2048  # uvicorn's default


class ListenError(Exception):
    """The port cannot be had; the message says why and which option changes it."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(host: str, *, no_auth: bool) -> str | None:
    """Why this bind is refused, or None: unauthenticated HTTP only where no other machine can connect."""
    if no_auth and not is_loopback(host):
        return (
            "--no-auth is allowed only on a loopback address (127.0.0.1, ::1, localhost): "
            f"{host} can be reached from other machines. Create a key with `genroute keys create NAME` "
            "and send it as `Authorization: Bearer <key>`, or bind to 127.0.0.1."
        )
    return None


def open_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, as uvicorn would open it (SO_REUSEADDR off Windows); ListenError if not.

    Made with proto IPPROTO_TCP, not 0: accepted sockets inherit it, and asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on sockets that say they are TCP. Without it, on plain asyncio (Windows, where there is no
    uvloop) a streamed answer's second write waited for the client's delayed ACK: 44 ms a call instead of 6."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let a second server take the port too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(BACKLOG)  # held from now on: a second genroute on this port fails here, not later
    except (OSError, OverflowError) as exc:
        sock.close()
        raise ListenError(_why(exc, host, port)) from None
    return sock


def _why(exc: OSError | OverflowError, host: str, port: int) -> str:
    if isinstance(exc, OverflowError):
        return f"port {port} is not a port number: --port takes 1-65535"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use: stop what listens there, or choose another with --port"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port} (ports below 1024 need privileges): choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on {host}: not an address of this machine. Use --host 127.0.0.1 (this machine only) "
            "or --host 0.0.0.0 (every interface)"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}. Check --host and --port"
