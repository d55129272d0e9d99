"""What metrics and traces add to one tool call: the hooks a chat_complete call runs, timed in a loop.

    python bench/bench_observability.py [--calls 100000] [--repeats 5]

One simulated call is the observability work of a real chat_complete over HTTP, in the order it happens: the
tool-call middleware around the handler (a context variable, the tool lookup, the outcome, a counter and a
histogram), the router's `resolved`, one upstream attempt's context manager (timer, status label, a counter and a
histogram) and the accountant's `recorded` (spend). It runs against:
- `baseline`: the same loop with no hook at all (a handler awaited directly);
- `off`: the do-nothing `Observer` (stdio, no OTEL_* variables), without the middleware (never installed then);
- `metrics`: `Observed` with Prometheus metrics (`serve --http`);
- `metrics+traces`: the same with OpenTelemetry spans (a real SDK tracer provider whose exporter drops the spans,
  so that no network is timed), when the `otel` extra is installed.
The figure is the median over `repeats` of (CPU time per call - baseline per call), in microseconds: CPU time, so
that other processes on a busy machine do not count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

from mcp_server.observability.metrics import Metrics
from mcp_server.observability.observed import Observed
from mcp_server.observability.observer import Observer
from mcp_server.store.base import UsageRecord

RESULT = {"content": [{"type": "text", "text": "hi"}], "structuredContent": {"content": "hi"}, "isError": False}
RECORD = UsageRecord(
    tool="chat_complete",
    model="gpt-5.5",
    provider="arkroute",
    upstream_model="gpt-5.5",
    outcome="ok",
    prompt_tokens=12,
    completion_tokens=30,
    cost_usd=0.0003,
    latency_ms=1.0,
    caller="key:abc",
)


@dataclass
class _Ctx:
    method: str = "tools/call"
    params: Any = None


class _Tools:
    """MCPServer's tool manager, as ToolCallMetrics reads it."""

    def get_tool(self, name: str) -> object | None:
        return self if name == "chat_complete" else None


class _Server:
    _tool_manager = _Tools()


async def _handler(observer: Observer) -> dict[str, Any]:
    observer.resolved("gpt-5.5")
    with observer.attempt("arkroute", "gpt-5.5", 0):
        pass
    observer.recorded(RECORD)
    return RESULT


async def _bare(_: Any) -> dict[str, Any]:
    """The handler without hooks: the baseline's one coroutine call, as the others make."""
    return RESULT


async def _loop(calls: int, observer: Observer | None, middleware: Any) -> float:
    ctx = _Ctx(params={"name": "chat_complete", "arguments": {}})
    started = time.process_time()
    if observer is None:
        for _ in range(calls):
            await _bare(ctx)
    elif middleware is None:
        for _ in range(calls):
            await _handler(observer)
    else:

        async def call_next(_: Any) -> dict[str, Any]:
            return await _handler(observer)

        for _ in range(calls):
            await middleware(ctx, call_next)
    return (time.process_time() - started) / calls * 1e6


def _tracer() -> Any:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    except ImportError:
        return None
    from mcp_server.observability.tracing import Tracer

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return Tracer(provider)


async def _traced_loop(calls: int, observer: Observed, middleware: Any) -> float:
    """As `_loop`, with the handler inside the router's traced run, so attempts are spanned too."""
    ctx = _Ctx(params={"name": "chat_complete", "arguments": {}})

    class _Card:
        id, kind, provider = "gpt-5.5", "chat", "arkroute"

    class _Routed:
        card, attempts, fallback_from = _Card(), 1, None

    async def run(card: Any, operation: Any, **options: Any) -> Any:
        await _handler(observer)
        return _Routed()

    traced = observer.traced(run)

    async def call_next(_: Any) -> Any:
        await traced(_Card(), None, tool="chat_complete")
        return RESULT

    started = time.process_time()
    for _ in range(calls):
        await middleware(ctx, call_next)
    return (time.process_time() - started) / calls * 1e6


async def main(calls: int, repeats: int) -> None:
    from mcp_server.observability.http import ToolCallMetrics

    metrics = Metrics()
    observed = Observed(metrics, None)
    middleware = ToolCallMetrics(_Server(), metrics)  # type: ignore[arg-type]
    tracer = _tracer()
    cases: dict[str, list[float]] = {"baseline": [], "off": [], "metrics": []}
    if tracer is not None:
        cases["metrics+traces"] = []
        traced = Observed(metrics, tracer)
        traced_middleware = ToolCallMetrics(_Server(), metrics)  # type: ignore[arg-type]
    for _ in range(repeats):
        cases["baseline"].append(await _loop(calls, None, None))
        cases["off"].append(await _loop(calls, Observer(), None))
        cases["metrics"].append(await _loop(calls, observed, middleware))
        if tracer is not None:
            cases["metrics+traces"].append(await _traced_loop(calls // 10, traced, traced_middleware))
    base = statistics.median(cases["baseline"])
    print(f"{calls} simulated calls x {repeats}; per call, median (min-max), over the baseline of {base:.2f} us:")
    for name, values in cases.items():
        if name == "baseline":
            continue
        added = [v - base for v in values]
        print(f"  {name:15s} +{statistics.median(added):6.2f} us  ({min(added):.2f}-{max(added):.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.repeats))
