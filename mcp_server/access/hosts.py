"""Host and Origin checks on every path and every bind address (DNS-rebinding and cross-site protection).

The SDK's TransportSecurityMiddleware only guards its own /mcp endpoint; this wraps the whole app with
the same validator, so /healthz, /media and anything added later answer 421 (bad Host) and 403 (bad Origin)
as well.
"""

from __future__ import annotations

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.access.answers import send_json
from mcp_server.config import HttpConfig
from mcp_server.listen import is_loopback

_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def security_settings(host: str, port: int, http: HttpConfig | None = None) -> TransportSecuritySettings:
    """Allowed Host values: the bind address (loopback names too for loopback and wildcard binds), with and
    without the port, plus `[http] allowed_hosts`. Allowed Origins: those hosts over http and https, plus
    `[http] allowed_origins`."""
    http = http or HttpConfig()
    names = {_bracketed(host)}
    if is_loopback(host) or host in ("0.0.0.0", "::"):
        names |= set(_LOOPBACK_NAMES)
    names.discard("0.0.0.0")
    names.discard("[::]")
    hosts = {f"{name}:{port}" for name in names} | names
    for extra in http.allowed_hosts:
        hosts.add(extra)
        if not extra.endswith("]") and ":" not in extra.rsplit("]", 1)[-1]:
            hosts.add(f"{extra}:*")  # a configured name without a port is allowed on any port
    origins = {f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")} | set(http.allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=sorted(hosts), allowed_origins=sorted(origins)
    )


def with_cors(app: ASGIApp, origins: list[str]) -> ASGIApp:
    """Let browser apps on `[http] allowed_origins` call genroute cross-origin: preflights are answered here, before
    authentication (a browser sends them without credentials), any request header is allowed (Authorization, the
    MCP headers) and the session id is exposed. Without configured origins there is no CORS layer at all."""
    if not origins:
        return app
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(
        app,
        allow_origins=origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["Mcp-Session-Id", "Mcp-Protocol-Version", "WWW-Authenticate"],
        max_age=600,
    )


class HostOriginGuard:
    """ASGI: 421 for a Host, 403 for an Origin not in the settings, before anything else runs."""

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings) -> None:
        self.app = app
        self._validator = TransportSecurityMiddleware(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self._validator.validate_request(Request(scope), is_post=False)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        if refusal.status_code == 421:
            detail = "This server does not answer to that Host name. Add it to [http] allowed_hosts in the config."
        else:
            detail = "Requests from that Origin are not allowed. Add it to [http] allowed_origins in the config."
        error = "forbidden_host" if refusal.status_code == 421 else "forbidden_origin"
        await send_json(send, refusal.status_code, {"error": error, "error_description": detail})
