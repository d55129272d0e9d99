"""A per-key cap on 2025-11-25 sessions, around the SDK's StreamableHTTPSessionManager (wrapped, not forked).

The SDK caps sessions server-wide only (10,000 by default): one key could open all of them and lock every other
tenant out until they idle out. The manager admits a new session under its creation lock and records who opened
each (the credential a session stays bound to); the check below counts the requestor's open sessions there at that
same moment, so the cap holds under concurrent opens (the hook is in sdk_internals.py). Idle sessions are the
SDK's to expire (`session_idle_timeout`, from `[http] session_idle_s`). Stateless 2026-07-28 requests open none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server.access.answers import jsonrpc_error
from mcp_server.sdk_internals import guard_session_admission


class SessionLimitReached(Exception):
    """Raised from the manager's admission; `session_limit_answer` turns it into the client's 429."""

    def __init__(self, per_key: int, idle_s: float) -> None:
        super().__init__(per_key, idle_s)
        self.per_key = per_key
        self.idle_s = idle_s


def cap_sessions_per_key(manager: StreamableHTTPSessionManager, per_key: int) -> None:
    """Refuse a key's new session while it has `per_key` open; sessions opened without a key are not capped
    (that is `--no-auth`, loopback only)."""

    def within_cap(requestor: AuthorizationContext | None, owners: Mapping[str, AuthorizationContext]) -> None:
        if requestor is not None:
            who = requestor["client_id"]  # a stable identity (principals.py), not a name
            if sum(1 for owner in owners.values() if owner["client_id"] == who) >= per_key:
                raise SessionLimitReached(per_key, manager.session_idle_timeout or 0.0)

    guard_session_admission(manager, within_cap)


async def session_limit_answer(_: Request, exc: Any) -> Response:
    """429 with a JSON-RPC error the SDK's clients show as it is."""
    assert isinstance(exc, SessionLimitReached)
    message = (
        f"Too many open sessions: this key may hold {exc.per_key} at once ([http] max_sessions_per_key). "
        "End sessions you no longer use (HTTP DELETE); an idle one closes by itself after "
        f"{exc.idle_s:g} s ([http] session_idle_s)."
    )
    body = jsonrpc_error(None, message, {"error": "too_many_sessions", "max_sessions_per_key": exc.per_key})
    return JSONResponse(body, status_code=429)
