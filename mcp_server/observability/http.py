"""The HTTP side of observability, wired in by http_app.py: `GET /metrics`, the tool-call middleware, the access
layers' refusals counted, and the metrics read at scrape time (video jobs, budgets, sessions, cooling providers).

`/metrics` is for admin keys (403 for others, 401 without a key), or for anyone with `[metrics] public = true`;
with `--no-auth` (loopback only) the local user reads it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from mcp_server.access import identity
from mcp_server.access.ratelimit import AuthFailureLimiter, RateLimiter
from mcp_server.gateway import Gateway
from mcp_server.observability.observer import TOOL_CALL, Observer, ToolCall
from mcp_server.sdk_internals import tool_lookup
from mcp_server.store.base import JobStatus
from mcp_server.store.usage import month_of, utcnow

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are on: http_app is loaded over stdio too
    from prometheus_client.metrics_core import Metric

    from mcp_server.observability.metrics import BudgetFigure, Metrics

METRICS_PATH = "/metrics"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")  # an error code kept as an outcome label as it is
_JOB_STATES: tuple[JobStatus, ...] = ("submitting", "running", "completed", "failed")


class HttpWatch:
    """What build_http_app asks of observability. With metrics off every method hands its argument back as is."""

    def __init__(self, observer: Observer, metrics: Metrics | None, public: bool) -> None:
        self.observer = observer
        self.metrics = metrics
        self.public_paths = frozenset({METRICS_PATH}) if metrics is not None and public else frozenset()

    def limiter(self, limiter: RateLimiter) -> RateLimiter:
        """The per-key rate limiter, its refusals counted."""
        return limiter if self.metrics is None else _CountedLimiter(limiter, self.observer)

    def failure_limiter(self, per_minute: int) -> AuthFailureLimiter:
        """The per-address limit on failed authentication, its refusals (429) counted."""
        return AuthFailureLimiter(per_minute) if self.metrics is None else _CountedFailures(per_minute, self.observer)

    def refusal_answer(self, answer: Callable[[Request, Any], Awaitable[Response]], reason: str) -> Any:
        """An exception handler that answers a refusal (sessions over the cap), counted."""
        if self.metrics is None:
            return answer
        observer = self.observer

        async def counted(request: Request, exc: Any) -> Response:
            observer.refused(reason)
            return await answer(request, exc)

        return counted


def watch_http(app: Starlette, mcp: MCPServer[Any], gateway: Gateway) -> HttpWatch:
    """Add `/metrics` and the tool-call middleware when the gateway keeps metrics (`serve --http` does)."""
    observer = gateway.observer
    metrics: Metrics | None = getattr(observer, "metrics", None)
    watch = HttpWatch(observer, metrics, gateway.config.metrics.public)
    if metrics is None:
        return watch
    from prometheus_client import CONTENT_TYPE_LATEST

    public = gateway.config.metrics.public

    async def endpoint(_: Request) -> Response:
        if not public and not identity.current().admin:
            message = (
                f"GET {METRICS_PATH} is for admin keys (genroute keys create NAME --admin), "
                "or for anyone with [metrics] public = true."
            )
            return JSONResponse({"error": "forbidden", "error_description": message}, status_code=403)
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.router.routes.append(Route(METRICS_PATH, endpoint, methods=["GET"], include_in_schema=False))
    mcp.middleware.insert(0, ToolCallMetrics(mcp, metrics))  # outermost: it sees the answer the client gets
    for source in _sources(mcp, gateway):
        metrics.add_source(source)
    if gateway.config.budget.monthly_usd is not None:
        metrics.add_budget_source(_global_budget(gateway))
    return watch


def traced_app(app: ASGIApp, gateway: Gateway) -> ASGIApp:
    """The whole app under the client's W3C trace context when traces are on (tracing.TraceContextMiddleware)."""
    if not gateway.observer.tracing:
        return app
    from mcp_server.observability.tracing import TraceContextMiddleware

    return TraceContextMiddleware(app)


class ToolCallMetrics:
    """Server middleware: each tools/call counted by tool, model and outcome, and timed. The router names the model
    (`TOOL_CALL`) once it has resolved it from the catalog; a tool name the server does not have is `unknown`."""

    def __init__(self, mcp: MCPServer[Any], metrics: Metrics) -> None:
        self.mcp = mcp
        self.metrics = metrics

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        name = ctx.params.get("name") if ctx.params else None
        known = isinstance(name, str) and tool_lookup(self.mcp)(name) is not None
        call = ToolCall(name if known else "unknown")
        token = TOOL_CALL.set(call)
        started = perf_counter()
        outcome = "error"
        try:
            result = await call_next(ctx)
            outcome = tool_outcome(result)
            return result
        except anyio.get_cancelled_exc_class():
            outcome = "cancelled"
            raise
        except Exception:
            outcome = "protocol_error"  # answered as a JSON-RPC error, not a tool result
            raise
        finally:
            TOOL_CALL.reset(token)
            self.metrics.tool_call(call.tool, call.model, outcome, perf_counter() - started)


def tool_outcome(result: Any) -> str:
    """`ok`, else the error code the client got (genroute's own, or the upstream's identifier), else
    `http_<status>`, else `error`. Metrics cap how many distinct codes they keep."""
    if isinstance(result, dict):
        failed, structured = result.get("isError"), result.get("structuredContent")
    else:
        failed, structured = getattr(result, "is_error", False), getattr(result, "structured_content", None)
    if not failed:
        return "ok"
    error = structured.get("error") if isinstance(structured, dict) else None
    if not isinstance(error, dict):
        return "error"
    code, status = error.get("code"), error.get("status")
    if isinstance(code, str) and _CODE.fullmatch(code):
        return code
    if isinstance(status, int) and 100 <= status <= 599:
        return f"http_{status}"
    return "error"


def _sources(mcp: MCPServer[Any], gateway: Gateway) -> list[Callable[[], Awaitable[Iterable[Metric]]]]:
    from mcp_server.observability.metrics import gauge

    async def video_jobs() -> list[Metric]:
        counts = await gateway.store.count_jobs_by_status()
        states = (*_JOB_STATES, *sorted(set(counts) - set(_JOB_STATES)))
        values = (([state], counts.get(state, 0)) for state in states)
        return [gauge("genroute_video_jobs", "Video jobs by state", ["state"], values)]

    async def sessions() -> list[Metric]:
        # the SDK's session manager keeps one transport per open 2025-11-25 session (stateless requests open none)
        open_now = len(mcp.session_manager._server_instances)
        return [gauge("genroute_open_sessions", "Open MCP sessions (2025-11-25 protocol)", [], [([], open_now)])]

    async def cooling() -> list[Metric]:
        values = (([name], float(gateway.health.cooling_down(name))) for name in sorted(gateway.adapters))
        return [gauge("genroute_provider_cooling_down", "1 while a provider is cooling down", ["provider"], values)]

    return [video_jobs, sessions, cooling]


def _global_budget(gateway: Gateway) -> Callable[[], Awaitable[list[BudgetFigure]]]:
    from mcp_server.observability.metrics import BudgetFigure

    async def read() -> list[BudgetFigure]:
        limit = gateway.config.budget.monthly_usd
        if limit is None:
            return []
        status = await gateway.store.budget_status(month_of(utcnow()))
        remaining = max(limit - status.spent_usd - status.reserved_usd, 0.0)  # as get_usage reports it
        return [BudgetFigure("global", "", limit, status.spent_usd, remaining)]

    return read


class _CountedLimiter:
    def __init__(self, inner: RateLimiter, observer: Observer) -> None:
        self.inner = inner
        self.observer = observer

    async def acquire(self, caller: str, per_minute: int) -> float:
        wait = await self.inner.acquire(caller, per_minute)
        if wait > 0:
            self.observer.refused("rate_limit")
        return wait


class _CountedFailures(AuthFailureLimiter):
    def __init__(self, per_minute: int, observer: Observer) -> None:
        super().__init__(per_minute)
        self.observer = observer

    def failed(self, address: str) -> float:
        wait = super().failed(address)
        if wait > 0:
            self.observer.refused("auth_failures")
        return wait
