"""Streamable HTTP app assembly: the MCP endpoint at /mcp, /healthz, and the access layers around them.

In front of everything, the connection itself (access/frontdoor.py): header size, header time and connection
count. Then, outermost first: Host/Origin (421/403, every path) -> CORS for `[http] allowed_origins` (when set:
preflights are answered before authentication) -> bearer authentication, the per-address limit on failures and the
per-key rate limit on tool calls (401/429, every path but /healthz and /.well-known/*) -> the SDK's app, which caps
request bodies (413) at /mcp, the one route that takes a body, and sessions per key (429, access/sessions.py).
Host and Origin are checked once, by the outer guard: the SDK's own check of them is switched off (it would repeat
the same work on every call and guard /mcp only). No tool logic here; the pieces live in mcp_server/access/.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from mcp_server import __version__, loop
from mcp_server.access import identity
from mcp_server.access.auth import ChainVerifier, require_bearer
from mcp_server.access.frontdoor import guarded_protocol
from mcp_server.access.hosts import HostOriginGuard, security_settings, with_cors
from mcp_server.access.keys import ApiKeyVerifier
from mcp_server.access.oauth import IntrospectionVerifier, metadata_routes, metadata_url
from mcp_server.access.ratelimit import RateLimiter, SharedWindowLimiter, TokenBucketLimiter
from mcp_server.access.sessions import SessionLimitReached, cap_sessions_per_key, session_limit_answer
from mcp_server.banner import http_banner
from mcp_server.dashboard.routes import Dashboard, DashboardFront
from mcp_server.gateway import Gateway
from mcp_server.http_answers import answering
from mcp_server.listen import STARTUP_FAILURE
from mcp_server.media.http import media_response
from mcp_server.media.links import MediaLinks
from mcp_server.media.registry import MediaRegistry
from mcp_server.observability.http import traced_app, watch_http
from mcp_server.sdk_internals import answer_requests_with

log = logging.getLogger("genroute.http")

__all__ = ["add_media_route", "build_http_app", "serve_http"]


def add_media_route(mcp: MCPServer[Any], registry: MediaRegistry, retention_days: float | None = None) -> None:
    """GET /media/{id}: the full file behind media://{id} (served only by the HTTP transport)."""

    @mcp.custom_route("/media/{media_id}", methods=["GET"], include_in_schema=False)
    async def media(request: Request) -> Response:
        return await media_response(registry, request, retention_days)


def build_http_app(mcp: MCPServer[Any], gateway: Gateway, host: str, port: int, *, auth: bool = True) -> ASGIApp:
    http = gateway.config.http
    settings = security_settings(host, port, http)

    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    app: Starlette = mcp.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),  # HostOriginGuard's
        host=host,
        max_request_body_size=http.max_body_bytes,
        session_idle_timeout=http.session_idle_s,
    )
    watch = watch_http(app, mcp, gateway)  # GET /metrics, tool-call metrics, refusals counted
    cap_sessions_per_key(mcp.session_manager, http.max_sessions_per_key)
    answer_requests_with(mcp.session_manager, answering(http.keepalive_s))  # JSON unless it streams progress
    app.add_exception_handler(SessionLimitReached, watch.refusal_answer(session_limit_answer, "sessions"))
    links = gateway.links = MediaLinks(gateway.store, http, served_url(host, port))
    failures = watch.failure_limiter(http.auth_failures_per_min)
    dashboard = Dashboard(gateway, links, failures, auth=auth)  # and signed /media links: before the bearer layer
    if not auth:
        identity.set_unauthenticated_caller("local")
        return HostOriginGuard(DashboardFront(with_cors(app, http.allowed_origins), dashboard), settings)

    oauth = http.oauth
    keys = ApiKeyVerifier(
        gateway.store,
        default_rate_limit_per_min=http.rate_limit_per_min,
        scopes=oauth.required_scopes if oauth else None,
    )
    introspection = (
        IntrospectionVerifier(oauth, default_rate_limit_per_min=http.rate_limit_per_min, failures=failures)
        if oauth
        else None
    )
    if oauth is not None:
        app.router.routes.extend(metadata_routes(oauth))
    _on_lifespan(app, gateway, introspection)
    protected = require_bearer(
        app,
        ChainVerifier(keys, introspection) if introspection else keys,
        required_scopes=oauth.required_scopes if oauth else None,
        resource_metadata_url=metadata_url(oauth) if oauth else None,
        limiter=watch.limiter(rate_limiter(gateway)),
        failures=failures,
        max_body_bytes=http.max_body_bytes,
        also_public=watch.public_paths,
    )
    return HostOriginGuard(DashboardFront(with_cors(protected, http.allowed_origins), dashboard), settings)


def served_url(host: str, port: int) -> str:
    """The address served, for signed links when neither `[http] public_base_url` nor a request's Host says."""
    name = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    return f"http://{name}:{port}"


def rate_limiter(gateway: Gateway) -> RateLimiter:
    """Counted in the store when replicas share it (PostgreSQL, or `[http] rate_limit_shared = true`)."""
    shared = gateway.config.http.rate_limit_shared
    if shared is None:
        shared = gateway.config.server.database_url is not None
    return SharedWindowLimiter(gateway.store) if shared else TokenBucketLimiter()


def raise_open_file_limit(wanted: int = 8192) -> None:
    """Lift the soft open-file limit toward the hard one: a busy gateway holds a socket per client and per
    upstream call (up to max_connections per provider), and some systems start at 256 or 1024."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def _on_lifespan(app: Starlette, gateway: Gateway, introspection: IntrospectionVerifier | None) -> None:
    """Warn at start-up when no credential could ever be accepted; close the introspection client at the end."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(starlette: Starlette) -> AsyncIterator[Any]:
        async with inner(starlette) as state:
            if introspection is None and not await gateway.store.list_keys(include_revoked=False):
                log.warning("no active API keys: every request will get 401. Create one: genroute keys create NAME")
            try:
                yield state
            finally:
                if introspection is not None:
                    await introspection.aclose()

    app.router.lifespan_context = lifespan


def serve_http(mcp: MCPServer[Any], gateway: Gateway, listener: socket.socket, log_level: str, *, no_auth: bool) -> int:
    """Serve on `listener` (opened first, see listen.py) until stopped; the exit status: 0, or 3 (uvicorn's) when
    the server never started (e.g. the store failed)."""
    import uvicorn

    raise_open_file_limit()
    host, port = listener.getsockname()[:2]
    app = traced_app(build_http_app(mcp, gateway, host, port, auth=not no_auth), gateway)
    http = gateway.config.http
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        log_config=None,  # keep genroute's redacting stderr handler for uvicorn's own loggers too
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=http.forwarded_allow_ips,
        http=guarded_protocol(http.max_header_bytes, http.header_timeout_s, http.max_connections),
        # An idle connection is closed by the front door after header_timeout_s (10 s), not by uvicorn's own 5 s:
        # a server that drops idle connections no later than its clients do (httpx's pool: 5 s) races them, and
        # a request sent on a connection closing under it fails with a read error.
        timeout_keep_alive=math.ceil(http.header_timeout_s) + 1,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the app is up and the port accepts: say where to connect
                print(await http_banner(gateway, host, port, no_auth=no_auth), file=sys.stderr, flush=True)

    # What `uvicorn.run` does, on genroute's loop runner: Ctrl-C is a clean stop (uvicorn shuts down gracefully,
    # then re-raises the signal it caught), and a server that never started is a failure.
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        loop.run(server.serve, [listener])
    return 0 if server.started else STARTUP_FAILURE
