"""Dashboard sign-in: a key pasted once becomes an HMAC-signed session cookie that never holds the key.

The cookie is `<key id>.<expiry>.<signature>`, signed with a key derived from the store's shared secret (so every
replica accepts it), HttpOnly, SameSite=Strict, Secure when the page was reached over https, and scoped to
/dashboard. Each request looks the key up again: a revoked key's session ends at once. State-changing requests
(sign in, sign out) must come from the dashboard's own origin (Origin, and Sec-Fetch-Site where sent).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from starlette.requests import Request
from starlette.responses import Response

from mcp_server.access.principals import Caller, key_identity
from mcp_server.media.links import MediaLinks
from mcp_server.store import ApiKeyRecord, Store

COOKIE = "genroute_dashboard"
SESSION_TTL_S = 12 * 3600
PATH = "/dashboard"


class Sessions:
    def __init__(self, store: Store, links: MediaLinks, *, auth: bool) -> None:
        self._store = store
        self._links = links
        self.auth = auth  # False: `--no-auth`, the machine's own user is everyone (an admin, as on /mcp)

    async def _key(self) -> bytes:
        return await self._links.derived_key("dashboard session")

    async def issue(self, record: ApiKeyRecord, response: Response, request: Request, now: float | None = None) -> None:
        expires = int((now if now is not None else time.time()) + SESSION_TTL_S)
        token = f"{record.id}.{expires}.{_sign(await self._key(), record.id, expires)}"
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_TTL_S,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def end(response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE, path=PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )

    async def caller(self, request: Request) -> Caller | None:
        """Who the request's session belongs to; None when there is no valid session (or its key is revoked)."""
        if not self.auth:
            return Caller(id="local", name="local", admin=True)
        key_id, _, rest = request.cookies.get(COOKIE, "").partition(".")
        expires, _, signature = rest.partition(".")
        if not key_id or not expires.isdigit() or int(expires) < time.time():
            return None
        expected = _sign(await self._key(), key_id, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        record = next((k for k in await self._store.list_keys(include_revoked=False) if k.id == key_id), None)
        if record is None:
            return None
        return Caller(id=key_identity(record.id), name=record.name, admin=record.admin)


def _sign(key: bytes, key_id: str, expires: int) -> str:
    digest = hmac.new(key, f"{key_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def same_origin(request: Request) -> bool:
    """A state-changing request from the dashboard's own page: its Origin is this server's scheme and Host."""
    if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
        return False
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return origin is not None and host is not None and origin == f"{request.url.scheme}://{host}"
