"""Prometheus metrics of one gateway, in a registry of its own (tests and several gateways in a process never clash).

Counters and histograms are updated on every call, so they are kept as plain numbers in dicts keyed by label
values (`_Counter`, `_Histogram`: a dict lookup and an add, on the event loop's thread, which is the only one that
calls them) and turned into prometheus_client's metric families only when Prometheus scrapes: prometheus_client's
own Counter and Histogram take a lock and check their state on every update, about ten times the cost. What lives in
the store or elsewhere (video jobs by state, the budget left, open sessions, cooling providers) is read only at scrape
time too, by `Source`s that `exposition` awaits and hands to a custom collector for that one scrape.

Labels are few and bounded: tool and model ids from the catalog (never a client's spelling), provider names from
the config, statuses and outcome codes (at most `MAX_OUTCOMES` distinct ones); never prompts, keys or callers.
"""

from __future__ import annotations

import itertools
import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from mcp_server import __version__

log = logging.getLogger("genroute.metrics")

# Tool calls run from milliseconds (a catalog read) to minutes (a video wait_s); upstream calls alike.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MAX_OUTCOMES = 64  # distinct outcome codes kept as they are; any later new one is counted as "other"

Source = Callable[[], Awaitable[Iterable[Metric]]]  # read at scrape time
Labels = tuple[str, ...]


class _Counter:
    """A counter family: label values -> total. `name` without `_total` (the exposition adds it)."""

    def __init__(self, registry: CollectorRegistry, name: str, documentation: str, labels: list[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.values: defaultdict[Labels, float] = defaultdict(float)
        registry.register(self)

    def add(self, key: Labels, amount: float = 1.0) -> None:
        self.values[key] += amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, total in self.values.items():
            family.add_metric(key, total)
        yield family


class _Timed:
    """Timed events counted by their labels: one row per label set holds the count in each bucket (the last one
    +Inf) and the sum, so one update per event serves both a counter (`counter`, by all the labels) and a histogram
    (`histogram`, by the first `histogram_labels` of them, summed over the rest at scrape time)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        counter: tuple[str, str],
        histogram: tuple[str, str],
        labels: list[str],
        histogram_labels: int,
    ) -> None:
        self.counter, self.histogram, self.labels, self.histogram_labels = counter, histogram, labels, histogram_labels
        self.bounds = BUCKETS_S
        self.rows: dict[Labels, list[float]] = {}
        registry.register(self)

    def observe(self, key: Labels, seconds: float) -> None:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, seconds)] += 1  # the first bucket whose bound holds it (le: <=)
        row[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(*self.counter, labels=self.labels)
        merged: dict[Labels, list[float]] = {}
        for key, row in self.rows.items():
            counts.add_metric(key, sum(row[:-1]))
            into = merged.setdefault(key[: self.histogram_labels], [0.0] * len(row))
            for index, value in enumerate(row):
                into[index] += value
        yield counts
        times = HistogramMetricFamily(*self.histogram, labels=self.labels[: self.histogram_labels])
        les = [*(repr(bound) for bound in self.bounds), "+Inf"]
        for key, row in merged.items():
            times.add_metric(key, list(zip(les, itertools.accumulate(row[:-1]), strict=True)), row[-1])
        yield times


@dataclass(frozen=True)
class BudgetFigure:
    """One budget at scrape time. `scope` is "global" (`[budget] monthly_usd`), or "key" with the key's name in
    `key` once per-key budgets exist (a `Source` for them is added with `Metrics.add_budget_source`)."""

    scope: str
    key: str
    limit_usd: float
    spent_usd: float
    remaining_usd: float


class Metrics:
    """One gateway's metrics: the call path's updates below, and what `GET /metrics` serves (`exposition`)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self._tool_calls = _Timed(
            registry,
            (
                "genroute_tool_calls",
                "MCP tool calls by tool, model (catalog id, empty when none was resolved) and outcome "
                "(ok, or the error code the client got)",
            ),
            ("genroute_tool_duration_seconds", "Time to answer an MCP tool call"),
            ["tool", "model", "outcome"],
            histogram_labels=1,
        )
        self._upstream = _Timed(
            registry,
            (
                "genroute_upstream_requests",
                "Upstream attempts by provider and status (ok, the HTTP status, timeout, connection_error, ...)",
            ),
            ("genroute_upstream_duration_seconds", "Time of one upstream attempt, by provider"),
            ["provider", "status"],
            histogram_labels=1,
        )
        self._retries = _Counter(registry, "genroute_retries", "Retries of an upstream call, by provider", ["provider"])
        self._fallbacks = _Counter(
            registry,
            "genroute_fallbacks",
            "Calls sent on to a fallback model, by the model asked for and the fallback",
            ["model", "fallback"],
        )
        self._cooldowns = _Counter(
            registry, "genroute_cooldowns", "Cooldowns started by this process, by provider", ["provider"]
        )
        self._spend = _Counter(
            registry,
            "genroute_spend_usd",
            "Cost of calls in USD, as the ledger records it, by the model that answered",
            ["model"],
        )
        self._refusals = _Counter(
            registry,
            "genroute_refusals",
            "Requests refused before they ran: budget_exceeded, price_unknown, rate_limit, auth_failures, sessions",
            ["reason"],
        )
        Gauge("genroute_build_info", "genroute's version", ["version"], registry=registry).labels(__version__).set(1)
        self._outcomes: set[str] = set()
        self._sources: list[Source] = []
        self._budget_sources: list[Callable[[], Awaitable[Iterable[BudgetFigure]]]] = []

    # ----- the call path (the event loop's thread only) ------------------------------------------------------

    def tool_call(self, tool: str, model: str, outcome: str, seconds: float) -> None:
        if outcome not in self._outcomes:
            if len(self._outcomes) >= MAX_OUTCOMES:
                outcome = "other"
            else:
                self._outcomes.add(outcome)
        self._tool_calls.observe((tool, model, outcome), seconds)

    def upstream(self, provider: str, status: str, seconds: float) -> None:
        self._upstream.observe((provider, status), seconds)

    def retried(self, provider: str) -> None:
        self._retries.add((provider,))

    def fell_back(self, model: str, fallback: str) -> None:
        self._fallbacks.add((model, fallback))

    def cooled_down(self, provider: str) -> None:
        self._cooldowns.add((provider,))

    def spent(self, model: str, usd: float) -> None:
        if usd > 0:
            self._spend.add((model,), usd)

    def refused(self, reason: str) -> None:
        self._refusals.add((reason,))

    # ----- scrape time ------------------------------------------------------------------------------------------

    def add_source(self, source: Source) -> None:
        """Metrics read when Prometheus scrapes (from the store, the session manager, ...)."""
        self._sources.append(source)

    def add_budget_source(self, source: Callable[[], Awaitable[Iterable[BudgetFigure]]]) -> None:
        """Budgets read when Prometheus scrapes: the global one now; per-key budgets add theirs here."""
        self._budget_sources.append(source)

    async def exposition(self) -> bytes:
        """The text format of every metric, with the scrape-time ones read now. A source that fails (the store
        is down) is left out of this scrape and logged; the rest is still served."""
        families: list[Metric] = []
        for source in self._sources:
            try:
                families.extend(await source())
            except Exception as exc:
                log.warning("a metric could not be read for this scrape: %s", _short(exc))
        figures: list[BudgetFigure] = []
        for budget in self._budget_sources:
            try:
                figures.extend(await budget())
            except Exception as exc:
                log.warning("a budget could not be read for this scrape: %s", _short(exc))
        if figures:
            families.extend(_budget_families(figures))
        return generate_latest(_ThisScrape(self.registry, families))  # type: ignore[arg-type]


class _ThisScrape:
    """The custom collector of one scrape: the registry's metrics, then those read for this scrape."""

    def __init__(self, registry: CollectorRegistry, families: list[Metric]) -> None:
        self.registry = registry
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.families


def gauge(name: str, documentation: str, labels: list[str], values: Iterable[tuple[list[str], float]]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


def _budget_families(figures: list[BudgetFigure]) -> list[Metric]:
    labels = ["scope", "key"]
    return [
        gauge(
            f"genroute_budget_{what}_usd",
            f"Monthly budget {what} in USD (UTC calendar month); remaining excludes what calls in flight reserved",
            labels,
            (([f.scope, f.key], getattr(f, f"{what}_usd")) for f in figures),
        )
        for what in ("limit", "spent", "remaining")
    ]


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
