"""Who is calling: the authenticated key's name (or OAuth principal) for the ledger and per-key views.

The SDK's AuthContextMiddleware puts the authenticated user in a contextvar, and its message streams carry
each request's context to the handler that serves it, so a tool reads the caller of *its* request here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import get_access_token


@dataclass(frozen=True)
class Caller:
    name: str
    admin: bool  # may see everyone's usage and jobs


# Without authentication: stdio (the local user), or HTTP with --no-auth (loopback only). Both are the
# machine's own user, so both see everything.
_unauthenticated = Caller(name="stdio", admin=True)


def set_unauthenticated_caller(name: str) -> None:
    """Name the caller of requests that carry no token (`genroute serve --http --no-auth` sets "local")."""
    global _unauthenticated
    _unauthenticated = Caller(name=name, admin=True)


def current() -> Caller:
    token = get_access_token()
    if token is None:
        return _unauthenticated
    return Caller(name=token.client_id, admin=bool((token.claims or {}).get("admin")))


def jobs_scope() -> str | None:
    """Whose video jobs this request may see: None (everyone's) for an admin, else the caller's own."""
    who = current()
    return None if who.admin else who.name


def current_caller() -> str:
    """The key name ("stdio" over stdio): what the usage ledger records as the caller."""
    return current().name
