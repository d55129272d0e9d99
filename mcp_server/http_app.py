"""Streamable HTTP wiring: the MCP endpoint at /mcp, /healthz, and Host/Origin protection. No tool logic."""

from __future__ import annotations

import ipaddress
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server import __version__
from mcp_server.media.http import media_response
from mcp_server.media.registry import MediaRegistry


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(host: str, port: int, extra_hosts: list[str] | None = None) -> TransportSecuritySettings:
    """DNS-rebinding protection on every bind: only these Host and Origin values are served."""
    names = {host}
    if is_loopback(host) or host in ("0.0.0.0", "::"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    hosts = sorted({f"{name}:{port}" for name in names} | names | set(extra_hosts or []))
    origins = sorted({f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")})
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def add_media_route(mcp: MCPServer[Any], registry: MediaRegistry) -> None:
    """GET /media/{id}: the full file behind media://{id} (served only by the HTTP transport)."""

    @mcp.custom_route("/media/{media_id}", methods=["GET"], include_in_schema=False)
    async def media(request: Request) -> Response:
        return await media_response(registry, request)


def build_http_app(mcp: MCPServer[Any], host: str, port: int) -> Starlette:
    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    return mcp.streamable_http_app(transport_security=transport_security(host, port), host=host)


def serve_http(mcp: MCPServer[Any], host: str, port: int, log_level: str) -> None:
    import uvicorn

    app = build_http_app(mcp, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=False, lifespan="on")
