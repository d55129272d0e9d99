"""What the routing layers tell about each call, for metrics and traces. This base tells no one.

The router, the retry loop and the accountant call these hooks on every call, so they are plain methods that do
nothing here (stdio, tests, in-process gateways); `Observed` (observed.py) passes them on to Prometheus metrics and
OpenTelemetry spans. No MCP, prometheus_client or opentelemetry import here: the router stays free of all three.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from mcp_server.errors import GatewayError

if TYPE_CHECKING:
    from mcp_server.store.base import UsageRecord

Run = Callable[..., Awaitable[Any]]


class _Nothing:
    """A context manager that does nothing, shared by every attempt that nothing observes."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


NOTHING = _Nothing()


@dataclass(slots=True)
class ToolCall:
    """One MCP tool call being observed: the MCP layer sets it (`TOOL_CALL`), the router names its model."""

    tool: str
    model: str = ""


# The tool call this task serves; set by the MCP layer's middleware while metrics are on, else never
TOOL_CALL: ContextVar[ToolCall | None] = ContextVar("genroute_tool_call", default=None)


class Observer:
    """The hooks, doing nothing. `tracing` tells the router to wrap each logical call in a span (`traced`)."""

    tracing = False

    def resolved(self, model: str) -> None:
        """A tool call's model was resolved to this catalog id (never the client's own spelling)."""

    def traced(self, run: Run) -> Run:
        """`run` (Router.run) wrapped in one span per logical call; only asked for when `tracing` is set."""
        return run

    def attempt(self, provider: str, model: str, retry: int) -> Any:
        """A context manager around one upstream attempt (`retry`: 0 for the first on this model)."""
        return NOTHING

    def retried(self, provider: str) -> None:
        """The retry loop is about to try the same provider again."""

    def fell_back(self, model: str, fallback: str) -> None:
        """`model` failed (or its provider is cooling down) and its fallback `fallback` is tried next."""

    def cooled_down(self, provider: str) -> None:
        """`provider` has started to cool down in this process."""

    def recorded(self, record: UsageRecord) -> None:
        """A ledger record is being written: the answering model, tokens and cost of one call."""

    def refused(self, reason: str) -> None:
        """A call was refused before it ran: `budget_exceeded` or `price_unknown` (budgets), `rate_limit`,
        `auth_failures` or `sessions` (the HTTP access layer)."""

    async def flush(self) -> None:
        """Send what is still buffered (spans), at shutdown."""


def upstream_status(error: BaseException | None) -> str:
    """An attempt's outcome as a low-cardinality label: `ok`, the upstream's HTTP status, or what came instead of
    an HTTP answer (`timeout`, `connection_error`, `malformed`, `not_sent`, `cancelled`, `error`)."""
    if error is None:
        return "ok"
    if isinstance(error, GatewayError):
        if error.code == "malformed_response":
            return "malformed"
        if error.request_sent is False:
            return "not_sent"  # never connected, or refused on the way (a fallback the budget cannot pay for)
        if error.request_sent is None and error.status:
            return str(error.status)  # an HTTP answer: 100-599
        return "timeout" if error.type == "timeout" else "connection_error"
    if isinstance(error, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return "error"
