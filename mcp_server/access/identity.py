"""Who is calling: the authenticated key (or OAuth principal), as a stable identity and a readable name.

The SDK's AuthContextMiddleware puts the authenticated user in a contextvar, and its message streams carry
each request's context to the handler that serves it, so a tool reads the caller of *its* request here.
Jobs, usage, rate limits and sessions belong to the identity (see principals.py); the name is for people.
"""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import get_access_token

from mcp_server.access.policy import UNRESTRICTED
from mcp_server.access.principals import STDIO, Caller

# Without authentication: stdio (the local user), or HTTP with --no-auth (loopback only). Both are the
# machine's own user, so both see everything.
_unauthenticated = Caller(id=STDIO, name=STDIO, admin=True)


def set_unauthenticated_caller(name: str) -> None:
    """Name the caller of requests that carry no token (`genroute serve --http --no-auth` sets "local")."""
    global _unauthenticated
    _unauthenticated = Caller(id=name, name=name, admin=True)


def current() -> Caller:
    """The caller of the request being served (the tool layer passes it on: see principals.Caller)."""
    token = get_access_token()
    if token is None:
        return _unauthenticated
    claims = token.claims or {}
    return Caller(
        id=token.client_id,
        name=str(claims.get("name") or token.client_id),
        admin=bool(claims.get("admin")),
        policy=claims.get("policy") or UNRESTRICTED,  # set by keys.ApiKeyVerifier; OAuth tokens have none
    )


def current_caller() -> str:
    """The caller's identity ("stdio" over stdio): what the usage ledger and video jobs record."""
    return current().id
