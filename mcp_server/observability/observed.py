"""The hooks passed on: to Prometheus metrics (served over HTTP) and to OpenTelemetry spans (when configured).

`build_observer` picks the cheapest observer that does the job: the do-nothing base when neither is on (stdio
without OTEL_* variables), so a call's path then holds only empty method calls and no third-party import.
"""

from __future__ import annotations

from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mcp_server.observability.observer import NOTHING, TOOL_CALL, Observer, Run, upstream_status

if TYPE_CHECKING:
    from mcp_server.observability.metrics import Metrics
    from mcp_server.observability.tracing import Tracer
    from mcp_server.store.base import UsageRecord


def build_observer(*, metrics: bool) -> Observer:
    """The gateway's observer: with Prometheus metrics when asked (`serve --http`), with traces when the `otel`
    extra is installed and OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set."""
    from mcp_server.observability import tracing

    tracer = tracing.start() if tracing.wanted() else None
    if not metrics and tracer is None:
        return Observer()
    from mcp_server.observability.metrics import Metrics

    return Observed(Metrics() if metrics else None, tracer)


class Observed(Observer):
    def __init__(self, metrics: Metrics | None, tracer: Tracer | None) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.tracing = tracer is not None

    def resolved(self, model: str) -> None:
        call = TOOL_CALL.get()
        if call is not None and not call.model:
            call.model = model

    def traced(self, run: Run) -> Run:
        return self.tracer.traced(run) if self.tracer is not None else run

    def attempt(self, provider: str, model: str, retry: int) -> Any:
        if self.tracer is not None:
            return self.tracer.attempt(provider, model, retry, self.metrics)
        if self.metrics is not None:
            return AttemptTimer(self.metrics, provider)
        return NOTHING

    def retried(self, provider: str) -> None:
        if self.metrics is not None:
            self.metrics.retried(provider)

    def fell_back(self, model: str, fallback: str) -> None:
        if self.metrics is not None:
            self.metrics.fell_back(model, fallback)

    def cooled_down(self, provider: str) -> None:
        if self.metrics is not None:
            self.metrics.cooled_down(provider)

    def recorded(self, record: UsageRecord) -> None:
        if self.metrics is not None:
            self.metrics.spent(record.model, record.cost_usd)
        if self.tracer is not None:
            self.tracer.recorded(record)

    def refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.refused(reason)

    async def flush(self) -> None:
        if self.tracer is not None:
            await self.tracer.flush()


class AttemptTimer:
    """Around one attempt when only metrics are on: its duration and outcome, by provider."""

    __slots__ = ("metrics", "provider", "started")

    def __init__(self, metrics: Metrics, provider: str) -> None:
        self.metrics = metrics
        self.provider = provider
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = perf_counter()

    def __exit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.metrics.upstream(self.provider, upstream_status(error), perf_counter() - self.started)
