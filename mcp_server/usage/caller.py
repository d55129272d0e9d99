"""Who is calling: "stdio" for a local client, the API key's name over HTTP, "anonymous" over HTTP without auth.

The MCP layer sets it once per tool call (tools/results.py's `guarded`); the router reads it when the tool did
not pass a caller explicitly, so every tool is attributed without threading the identity through each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

STDIO = "stdio"
ANONYMOUS = "anonymous"
SCOPE_KEY = "genroute.caller"  # an auth layer may put the key's name here in the ASGI scope

_caller: ContextVar[str] = ContextVar("genroute_caller", default=STDIO)


def current_caller() -> str:
    return _caller.get()


@contextmanager
def calling_as(caller: str) -> Iterator[None]:
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


def caller_from_request(request: Any | None) -> str:
    """The identity behind an HTTP request (a starlette Request), or "stdio" when there is none.

    Looks for, in order: scope["genroute.caller"], an SDK bearer-auth user's client_id, an authenticated
    starlette user's display_name; else "anonymous".
    """
    if request is None:
        return STDIO
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return ANONYMOUS
    explicit = scope.get(SCOPE_KEY)
    if isinstance(explicit, str) and explicit:
        return explicit
    user = scope.get("user")
    client_id = getattr(getattr(user, "access_token", None), "client_id", None)
    if isinstance(client_id, str) and client_id:
        return client_id
    name = getattr(user, "display_name", None)
    if getattr(user, "is_authenticated", False) and isinstance(name, str) and name:
        return name
    return ANONYMOUS
