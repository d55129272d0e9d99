"""GET /dashboard and its JSON under /dashboard/api/, plus signed media links (GET /media/{id}?exp=&sig=).

Both live in front of the bearer layer: the dashboard authenticates with its session cookie (session.py), a signed
link with its signature. Everything else goes on to the bearer-protected app. Host and Origin were checked by
HostOriginGuard outside all of this. Every dashboard answer carries a strict Content-Security-Policy: the page is
one HTML file, one script and one stylesheet, all from here, no inline code.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.access.keys import ApiKeyVerifier
from mcp_server.access.principals import Caller
from mcp_server.access.ratelimit import AuthFailureLimiter, address_of
from mcp_server.dashboard import api
from mcp_server.dashboard.session import Sessions, same_origin
from mcp_server.errors import GatewayError
from mcp_server.gateway import Gateway
from mcp_server.media.http import file_response, signed_media_response
from mcp_server.media.links import MediaLinks, request_base
from mcp_server.media.previews import UnreadableImage, make_preview
from mcp_server.store import StoreUnavailable

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
THUMB_SIDE, THUMB_B64_BYTES, THUMBS_KEPT = 320, 60_000, 256
Handler = Callable[[Request, Caller], Awaitable[Any]]


class Dashboard:
    def __init__(self, gateway: Gateway, links: MediaLinks, failures: AuthFailureLimiter, *, auth: bool) -> None:
        self.gateway = gateway
        self.links = links
        self.failures = failures
        self.sessions = Sessions(gateway.store, links, auth=auth)
        self.keys = ApiKeyVerifier(gateway.store, default_rate_limit_per_min=0)
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        api_routes = {
            "me": self._me,
            "spend": lambda r, c: api.spend(gateway, c),
            "calls": self._calls,
            "jobs": lambda r, c: api.jobs(gateway, c),
            "media": lambda r, c: api.media(gateway, c),
            "health": self._health,
            "keys": self._keys,
        }
        routes = [
            Route("/dashboard", self.page),
            Route("/dashboard/", self.page),
            Route("/dashboard/static/{name}", self.asset),
            Route("/dashboard/login", self.login, methods=["POST"]),
            Route("/dashboard/logout", self.logout, methods=["POST"]),
            *(Route(f"/dashboard/api/{name}", self._signed_in(handler)) for name, handler in api_routes.items()),
            Route("/dashboard/file/{media_id}", self._signed_in(self.file)),
            Route("/dashboard/thumb/{media_id}", self._signed_in(self.thumb)),
            Route("/media/{media_id}", self.signed_media),
        ]
        self.app = Starlette(routes=routes)

    async def signed_media(self, request: Request) -> Response:
        retention = self.gateway.config.server.media_retention_days
        return await signed_media_response(self.gateway.media, self.links, request, retention)

    async def page(self, _: Request) -> Response:
        return _secured(FileResponse(STATIC / "index.html", media_type="text/html"))

    async def asset(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in ASSETS:
            return _secured(JSONResponse({"error": "no such file"}, status_code=404))
        return _secured(FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"}))

    async def login(self, request: Request) -> Response:
        if not same_origin(request):
            return _problem(403, "Sign-in must come from the dashboard page itself (Origin mismatch).")
        if not self.sessions.auth:
            return _secured(JSONResponse({"ok": True}))
        try:
            key = str(json.loads(await request.body()).get("key", "")).strip()
        except (ValueError, AttributeError):
            return _problem(400, 'Send JSON like {"key": "gr_..."}.')
        address = address_of(request.scope)
        if self.failures.blocked(address) > 0:
            return _problem(429, "Too many failed sign-ins from this address; wait a minute.")
        token = await self.keys.verify_token(key)
        record = None
        if token is not None:
            key_id = (token.claims or {}).get("genroute_key_id")
            active = await self.gateway.store.list_keys(include_revoked=False)
            record = next((k for k in active if k.id == key_id), None)
        if record is None:
            self.failures.failed(address)
            return _problem(401, "That key is not valid (or was revoked). Paste a key from `genroute keys create`.")
        response = _secured(JSONResponse({"ok": True, "name": record.name, "admin": record.admin}))
        await self.sessions.issue(record, response, request)
        return response

    async def logout(self, request: Request) -> Response:
        if not same_origin(request):
            return _problem(403, "Sign-out must come from the dashboard page itself (Origin mismatch).")
        response = _secured(JSONResponse({"ok": True}))
        self.sessions.end(response, request)
        return response

    def _signed_in(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                caller = await self.sessions.caller(request)
                if caller is None:
                    return _problem(401, "Not signed in: paste a key on the dashboard page.")
                result = await handler(request, caller)
            except StoreUnavailable as error:
                return _problem(503, str(error))
            except GatewayError as error:  # the media store is down, or a file too large to read whole
                return _problem(error.status or 500, error.message)
            return result if isinstance(result, Response) else _secured(_json_of(result))

        return endpoint

    async def _calls(self, request: Request, caller: Caller) -> list[api.Call]:
        query = request.query_params
        filters = {name: query.get(name, "")[:200] for name in ("model", "caller", "outcome")}
        return await api.calls(self.gateway, caller, model=filters["model"], who=filters["caller"],
                               outcome=filters["outcome"])  # fmt: skip

    async def _me(self, _: Request, caller: Caller) -> api.Me:
        return api.Me(name=caller.name, admin=caller.admin, auth=self.sessions.auth)

    async def _health(self, _: Request, caller: Caller) -> Any:
        return api.health(self.gateway, caller)

    async def _keys(self, _: Request, caller: Caller) -> Any:
        if not caller.admin:
            return _problem(403, "Only admin keys see the key list.")
        return await api.keys(self.gateway)

    async def file(self, request: Request, caller: Caller) -> Response:
        item = await self._owned(request, caller)
        if isinstance(item, Response):
            return item
        answer = await file_response(self.gateway.media, item.id, request, private=True)
        return _secured(answer or _problem(404, f"No media file '{item.id}' that this key may open."))

    async def thumb(self, request: Request, caller: Caller) -> Response:
        item = await self._owned(request, caller)
        if isinstance(item, Response):
            return item
        data = self._thumbs.get(item.id)
        if data is None:
            if not item.mime_type.startswith("image/"):
                return _problem(415, "That file is not an image a thumbnail can be made of.")
            _, raw = await self.gateway.media.read(item.id, self.gateway.config.media.max_image_bytes)
            try:
                preview = await anyio.to_thread.run_sync(make_preview, raw, THUMB_B64_BYTES, THUMB_SIDE)
            except UnreadableImage:
                return _problem(415, "That file is not an image a thumbnail can be made of.")
            data = base64.b64decode(preview.data_b64)
            self._thumbs[item.id] = data
            while len(self._thumbs) > THUMBS_KEPT:
                self._thumbs.popitem(last=False)
        mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else item.mime_type
        return _secured(Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=3600"}))

    async def _owned(self, request: Request, caller: Caller) -> Any:
        media_id = str(request.path_params["media_id"])
        allowed = await api.may_open(self.gateway, caller, media_id)
        item = await self.gateway.media.get(media_id) if allowed else None
        return item or _problem(404, f"No media file '{media_id}' that this key may open.")


def _json_of(result: Any) -> JSONResponse:
    if isinstance(result, list):
        body = TypeAdapter(list[Any]).dump_python(
            [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result], mode="json"
        )
    else:
        body = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _problem(status: int, message: str) -> Response:
    return _secured(JSONResponse({"error": {"message": message, "status": status}}, status_code=status))


class DashboardFront:
    """ASGI: /dashboard/... and signed /media links to the dashboard's app, everything else to `protected`; and the
    request's own scheme and Host noted for signed links' default base URL."""

    def __init__(self, protected: ASGIApp, dashboard: Dashboard) -> None:
        self.protected = protected
        self.dashboard = dashboard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.protected(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        token = request_base.set(f"{scope.get('scheme', 'http')}://{host}" if host else None)
        try:
            signed = path.startswith("/media/") and b"sig=" in scope.get("query_string", b"")
            if path == "/dashboard" or path.startswith("/dashboard/") or signed:
                await self.dashboard.app(scope, receive, send)
            else:
                await self.protected(scope, receive, send)
        finally:
            request_base.reset(token)
