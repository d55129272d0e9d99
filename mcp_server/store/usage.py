"""The usage ledger's shapes and the query plan both stores share.

Every provider call adds one `UsageRecord` to the ledger and to an hourly roll-up (same transaction). A summary
over [start, end) reads whole hours from the roll-up and only the partial hours at either edge from the ledger,
so a month of a million records answers in milliseconds while staying exact to the second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

GroupBy = Literal["model", "day", "provider", "caller"]
HOUR = timedelta(hours=1)
COST_EPSILON = 1e-9  # float sums of many small costs: 0.1 + 0.2 must still fit a 0.3 budget


def utcnow() -> datetime:
    return datetime.now(UTC)


def month_of(at: datetime) -> str:
    """The budget month ("YYYY-MM", UTC) a moment belongs to."""
    return at.astimezone(UTC).strftime("%Y-%m")


class UsageRecord(BaseModel):
    """One provider call as the ledger keeps it (the refusals of the budget guard too)."""

    at: datetime = Field(default_factory=utcnow)
    tool: str
    model: str  # catalog id of the model that answered (or was asked for, when nothing answered)
    provider: str
    upstream_model: str
    outcome: str = "ok"  # "ok" or the error code
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    images: int = Field(default=0, ge=0)
    video_seconds: float = Field(default=0.0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    caller: str = "stdio"
    job_id: str | None = None

    @property
    def errors(self) -> int:
        return 0 if self.outcome == "ok" else 1

    @property
    def hour(self) -> datetime:
        return floor_hour(self.at)


class UsageTotals(BaseModel):
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0
    cost_usd: float = 0.0

    def add(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(**{name: getattr(self, name) + getattr(other, name) for name in TOTAL_FIELDS})

    @classmethod
    def of(cls, record: UsageRecord) -> UsageTotals:
        return cls(
            requests=1,
            errors=record.errors,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            images=record.images,
            video_seconds=record.video_seconds,
            cost_usd=record.cost_usd,
        )


TOTAL_FIELDS: tuple[str, ...] = tuple(UsageTotals.model_fields)


class UsageQuery(BaseModel):
    start: datetime  # inclusive, timezone-aware
    end: datetime  # exclusive
    model: str | None = None
    caller: str | None = None
    group_by: GroupBy = "model"


class UsageSummary(BaseModel):
    totals: UsageTotals
    breakdown: dict[str, UsageTotals]


class BudgetStatus(BaseModel):
    month: str
    spent_usd: float
    reserved_usd: float


class Reservation(BaseModel):
    """The answer to a reservation request; `id` is set only when it was granted."""

    granted: bool
    id: str | None = None
    month: str
    amount_usd: float
    spent_usd: float  # settled spend of the month when the decision was taken
    reserved_usd: float  # other calls' reservations in flight at that moment


def floor_hour(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    floored = floor_hour(at)
    return floored if floored == at.astimezone(UTC) else floored + HOUR


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class UsagePlan:
    """Which table answers which part of a period: whole hours from the roll-up, the rest from the ledger."""

    rollup: Span | None
    ledger: tuple[Span, ...]


def plan_usage(start: datetime, end: datetime) -> UsagePlan:
    if end <= start:
        return UsagePlan(None, ())
    first, last = ceil_hour(start), floor_hour(end)
    if first >= last:
        return UsagePlan(None, (Span(start, end),))
    edges = tuple(span for span in (Span(start, first), Span(last, end)) if span.start < span.end)
    return UsagePlan(Span(first, last), edges)


def merge_rows(rows: list[tuple[str, UsageTotals]]) -> UsageSummary:
    """Add up per-key partial totals (roll-up and edge rows of one key land in one breakdown entry)."""
    breakdown: dict[str, UsageTotals] = {}
    totals = UsageTotals()
    for key, part in rows:
        breakdown[key] = breakdown[key].add(part) if key in breakdown else part
        totals = totals.add(part)
    return UsageSummary(totals=totals, breakdown=dict(sorted(breakdown.items())))


@dataclass(frozen=True)
class Dialect:
    """The few SQL differences between the stores: placeholders, and how a time column becomes a UTC day."""

    placeholder: str
    ledger_day: str
    rollup_day: str


def aggregate_sql(dialect: Dialect, source: Literal["ledger", "rollup"], query: UsageQuery) -> str:
    """One GROUP BY over the ledger or the roll-up for `query`'s filters; time bounds are the first two params."""
    ph = dialect.placeholder
    if source == "ledger":
        table, time_col, day = "usage_ledger", "at", dialect.ledger_day
        sums = "COUNT(*), SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END)"
    else:
        table, time_col, day = "usage_hourly", "hour", dialect.rollup_day
        sums = "SUM(requests), SUM(errors)"
    sums += ", SUM(prompt_tokens), SUM(completion_tokens), SUM(images), SUM(video_seconds), SUM(cost_usd)"
    key = day if query.group_by == "day" else query.group_by
    where = [f"{time_col} >= {ph}", f"{time_col} < {ph}"]
    where += [f"{column} = {ph}" for column in ("model", "caller") if getattr(query, column) is not None]
    return f"SELECT {key}, {sums} FROM {table} WHERE {' AND '.join(where)} GROUP BY 1"


def summary_statement(
    dialect: Dialect, query: UsageQuery, bound: Callable[[datetime], object]
) -> tuple[str, list[object]] | None:
    """The whole plan as one UNION ALL statement (one snapshot, one round trip); None for an empty period."""
    plan = plan_usage(query.start, query.end)
    parts: list[tuple[Literal["ledger", "rollup"], Span]] = [("rollup", plan.rollup)] if plan.rollup else []
    parts += [("ledger", span) for span in plan.ledger]
    if not parts:
        return None
    filters = [value for value in (query.model, query.caller) if value is not None]
    sql = " UNION ALL ".join(
        f"SELECT * FROM ({aggregate_sql(dialect, source, query)}) AS p{i}" for i, (source, _) in enumerate(parts)
    )
    params = [p for _, span in parts for p in (bound(span.start), bound(span.end), *filters)]
    return sql, params


def totals_row(row: tuple[object, ...]) -> tuple[str, UsageTotals]:
    key, requests, errors, prompt, completion, images, seconds, cost = row
    return str(key), UsageTotals(
        requests=int(requests or 0),  # type: ignore[call-overload]
        errors=int(errors or 0),  # type: ignore[call-overload]
        prompt_tokens=int(prompt or 0),  # type: ignore[call-overload]
        completion_tokens=int(completion or 0),  # type: ignore[call-overload]
        images=int(images or 0),  # type: ignore[call-overload]
        video_seconds=float(seconds or 0.0),  # type: ignore[arg-type]
        cost_usd=float(cost or 0.0),  # type: ignore[arg-type]
    )


def rollup_deltas(records: list[UsageRecord]) -> dict[tuple[datetime, str, str, str], UsageTotals]:
    """Records folded into roll-up rows (hour, model, provider, caller), sorted so writers lock in one order."""
    deltas: dict[tuple[datetime, str, str, str], UsageTotals] = {}
    for record in records:
        key = (record.hour, record.model, record.provider, record.caller)
        part = UsageTotals.of(record)
        deltas[key] = deltas[key].add(part) if key in deltas else part
    return dict(sorted(deltas.items()))


def month_spend(records: list[UsageRecord]) -> dict[str, float]:
    spend: dict[str, float] = {}
    for record in records:
        if record.cost_usd:
            month = month_of(record.at)
            spend[month] = spend.get(month, 0.0) + record.cost_usd
    return dict(sorted(spend.items()))
