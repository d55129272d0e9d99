"""OpenTelemetry traces: the `otel` extra, switched on by the standard OTEL_EXPORTER_OTLP_* variables.

`wanted()` reads only the environment; nothing here imports opentelemetry's SDK until `start()` runs, which
happens only when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set. Then:
- the mcp SDK's own span per MCP request ("tools/call chat_complete", server side) starts recording; over HTTP its
  parent is the client's W3C `traceparent` header when it sent one (`TraceContextMiddleware`), or the one in the
  request's `_meta`;
- inside it, one span per logical router call, named and attributed as OpenTelemetry's GenAI conventions say
  ("chat gpt-5.5": gen_ai.operation.name, gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens,
  gen_ai.usage.output_tokens) plus genroute.cost_usd;
- inside that, one span per upstream attempt (provider, model, retry number, status), whose `traceparent` goes
  upstream with the request.
Spans are batched and sent over OTLP/HTTP (protobuf) by the exporter, which reads every OTEL_EXPORTER_OTLP_*
setting itself (endpoint, headers, timeout, compression); OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from mcp_server import __version__
from mcp_server.observability.observer import Run, upstream_status

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from starlette.types import ASGIApp, Receive, Scope, Send

    from mcp_server.catalog import ModelCard
    from mcp_server.observability.metrics import Metrics
    from mcp_server.store.base import UsageRecord

log = logging.getLogger("genroute.tracing")

# gen_ai.operation.name per kind of model (the GenAI conventions name no image or video operation of their own)
OPERATIONS = {"chat": "chat", "image": "generate_content", "video": "generate_content"}
_in_call: ContextVar[bool] = ContextVar("genroute_traced_call", default=False)  # attempts are spanned inside one
_started: Tracer | None = None
FLUSH_TIMEOUT_MS = 5000


def wanted() -> bool:
    """Traces were asked for: an OTLP endpoint is set, and the SDK is not disabled (no import needed to tell)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def start() -> Tracer | None:
    """The process's tracer, set up on first use (OpenTelemetry's tracer provider is process-wide); None, with
    one warning, when the `otel` extra is not installed."""
    global _started
    if _started is not None:
        return _started
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but the otel extra is not installed (%s): no traces. "
            "Install it with: pip install 'genroute[otel]'",
            exc.name,
        )
        return None
    from mcp_server.providers.http import REQUEST_HOOKS

    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    REQUEST_HOOKS.append(_send_traceparent)
    _started = Tracer(provider)
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    log.info("OpenTelemetry traces are exported over OTLP/HTTP to %s", endpoint)
    return _started


def _resource() -> Any:
    """service.name "genroute" unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name it (they win)."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, str] = {"service.version": __version__}
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not named:
        attributes["service.name"] = "genroute"
    return Resource.create(attributes)


async def _send_traceparent(request: Any) -> None:
    """An httpx2 request hook on every provider client: the current span's W3C trace context goes upstream."""
    from opentelemetry import propagate

    propagate.inject(request.headers)


class Tracer:
    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, StatusCode

        self.provider = provider
        self.tracer = provider.get_tracer("genroute", __version__)
        self._context, self._trace, self._client, self._error = context, trace, SpanKind.CLIENT, StatusCode.ERROR

    def traced(self, run: Run) -> Run:
        """Router.run in one GenAI span per logical call that is paid for (video status polls are not spanned)."""
        tracer, client = self.tracer, self._client

        async def traced_run(card: ModelCard, operation: Any, **options: Any) -> Any:
            if options.get("metered") is False:
                return await run(card, operation, **options)
            name = OPERATIONS.get(card.kind, "generate_content")
            attributes = {
                "gen_ai.operation.name": name,
                "gen_ai.request.model": card.id,
                "gen_ai.provider.name": card.provider,
                "genroute.tool": options.get("tool") or card.kind,
            }
            with tracer.start_as_current_span(
                f"{name} {card.id}",
                kind=client,
                attributes=attributes,
                record_exception=False,  # an exception's text is the client's to see, not the collector's
                set_status_on_exception=False,
            ) as span:
                token = _in_call.set(True)
                try:
                    routed = await run(card, operation, **options)
                except BaseException as error:
                    self._failed(span, error)
                    raise
                finally:
                    _in_call.reset(token)
                span.set_attribute("gen_ai.response.model", routed.card.id)
                span.set_attribute("genroute.attempts", routed.attempts)
                if routed.fallback_from:
                    span.set_attribute("genroute.fallback_from", routed.fallback_from)
                return routed

        return traced_run

    def _failed(self, span: Any, error: BaseException) -> None:
        code = getattr(error, "code", None) or getattr(error, "type", None) or type(error).__name__
        if isinstance(error, anyio.get_cancelled_exc_class()):
            code = "cancelled"
        span.set_attribute("error.type", str(code))
        span.set_status(self._error)

    def attempt(self, provider: str, model: str, retry: int, metrics: Metrics | None) -> AttemptSpan:
        return AttemptSpan(self, provider, model, retry, metrics)

    def recorded(self, record: UsageRecord) -> None:
        """The call's ledger record, on its GenAI span: the model that answered, tokens and cost."""
        if not _in_call.get():
            return
        span = self._trace.get_current_span()
        span.set_attribute("gen_ai.response.model", record.model)
        span.set_attribute("genroute.cost_usd", record.cost_usd)
        span.set_attribute("genroute.outcome", record.outcome)
        if record.prompt_tokens or record.completion_tokens:
            span.set_attribute("gen_ai.usage.input_tokens", record.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", record.completion_tokens)

    async def flush(self) -> None:
        """Export the spans still batched (at shutdown), in a thread (the exporter's HTTP call blocks), for at most
        FLUSH_TIMEOUT_MS: a collector that is down must not hold the server's stop."""
        await anyio.to_thread.run_sync(self.provider.force_flush, FLUSH_TIMEOUT_MS)


class AttemptSpan:
    """Around one upstream attempt: a child span of the call's GenAI span, current while the request is sent (so
    its traceparent goes upstream), and the attempt's metrics when those are on."""

    __slots__ = ("metrics", "model", "owner", "provider", "retry", "span", "started", "token")

    def __init__(self, owner: Tracer, provider: str, model: str, retry: int, metrics: Metrics | None) -> None:
        self.owner, self.provider, self.model, self.retry, self.metrics = owner, provider, model, retry, metrics
        self.span: Any = None
        self.token: Any = None
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = perf_counter()
        if _in_call.get():
            owner = self.owner
            self.span = owner.tracer.start_span(
                f"attempt {self.provider}",
                kind=owner._client,
                attributes={
                    "genroute.provider": self.provider,
                    "genroute.model": self.model,
                    "genroute.retry": self.retry,
                },
            )
            self.token = owner._context.attach(owner._trace.set_span_in_context(self.span))

    def __exit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        status = upstream_status(error)
        if self.metrics is not None:
            self.metrics.upstream(self.provider, status, perf_counter() - self.started)
        span = self.span
        if span is None:
            return
        span.set_attribute("genroute.upstream.status", status)
        if status.isdigit():
            span.set_attribute("http.response.status_code", int(status))
        if error is not None:
            span.set_attribute("error.type", status)
            span.set_status(self.owner._error)
        self.owner._context.detach(self.token)
        span.end()


class TraceContextMiddleware:
    """ASGI: an HTTP request's W3C `traceparent` (and `tracestate`) made the current trace context while it is
    served, so the mcp SDK's span for the MCP request it carries (and so genroute's spans) join the caller's
    trace. The SDK carries each request's context to the handler that serves it."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry import context, propagate

        self.app = app
        self._context, self._propagate = context, propagate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = self._context.attach(self._propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            self._context.detach(token)
