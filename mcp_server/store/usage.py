"""The usage ledger's shapes and the query plan both stores share.

Every provider call adds one `UsageRecord` to the ledger and to the daily and hourly roll-ups (same transaction).
A summary over [start, end) reads whole days and hours from the roll-ups and only the partial hours at either edge
from the ledger,
so a month of a million records answers in milliseconds while staying exact to the second. A daily roll-up
above the hourly one keeps a month's query to a few thousand rows whatever the call volume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, field_validator

GroupBy = Literal["model", "day", "provider", "caller"]
HOUR = timedelta(hours=1)
COST_EPSILON = 1e-9  # float sums of many small costs: 0.1 + 0.2 must still fit a 0.3 budget


def grantable(spent: float, reserved: float, limit: float, amount: float, at_least: float | None) -> float | None:
    """What a reservation may hold: `amount` when spent + reserved + amount stays within `limit`; else, when the
    caller can do with less (`at_least`), all that is left if that is at least `at_least`; else None (refused)."""
    left = limit - spent - reserved
    if amount <= left + COST_EPSILON:
        return amount
    if at_least is not None and at_least <= left + COST_EPSILON:
        return max(left, at_least)
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)


def month_of(at: datetime) -> str:
    """The budget month ("YYYY-MM", UTC) a moment belongs to."""
    utc = at.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def _aware(at: datetime) -> datetime:
    """Naive times are taken as UTC: every bucket and month is a UTC one."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


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
    characters: int = Field(default=0, ge=0)  # speech input
    audio_seconds: float = Field(default=0.0, ge=0)  # transcribed audio
    cost_usd: float = Field(default=0.0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    caller: str = "stdio"
    job_id: str | None = None
    api_key_env: str | None = None  # the variable whose key the provider was called with (never the key)

    _at_aware = field_validator("at")(_aware)

    @property
    def errors(self) -> int:
        return 0 if self.outcome == "ok" else 1


class UsageTotals(BaseModel):
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0
    characters: int = 0
    audio_seconds: float = 0.0
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
            characters=record.characters,
            audio_seconds=record.audio_seconds,
            cost_usd=record.cost_usd,
        )


TOTAL_FIELDS: tuple[str, ...] = tuple(UsageTotals.model_fields)


class UsageQuery(BaseModel):
    start: datetime  # inclusive, timezone-aware
    end: datetime  # exclusive
    model: str | None = None
    caller: str | None = None
    group_by: GroupBy = "model"

    _times_aware = field_validator("start", "end")(_aware)


class UsageSummary(BaseModel):
    totals: UsageTotals
    breakdown: dict[str, UsageTotals]


class BudgetStatus(BaseModel):
    month: str
    spent_usd: float
    reserved_usd: float


@dataclass(frozen=True)
class KeyBudget:
    """A key's own monthly limit, reserved against in the same transaction as the global one."""

    caller: str  # the key's identity, `key:<id>`: what its ledger rows and reservations carry
    limit_usd: float


KEY_CALLER_PREFIX = "key:"  # ledger rows of these callers also count towards their key's month


class Reservation(BaseModel):
    """The answer to a reservation request; `id` is set only when it was granted."""

    granted: bool
    id: str | None = None
    month: str
    amount_usd: float  # what it holds when granted (less than asked for when `at_least` allowed it), else asked
    spent_usd: float  # settled spend of the month (of the key's, when `scope` is "key") at the decision
    reserved_usd: float  # other calls' reservations in flight at that moment (of that key's, likewise)
    scope: Literal["global", "key"] = "global"  # the limit that refused the call or cut what it holds


def decide(
    month: str,
    amount: float,
    at_least: float | None,
    limit: float | None,
    figures: tuple[float, float],
    key: KeyBudget | None = None,
    key_figures: tuple[float, float] = (0.0, 0.0),
) -> Reservation:
    """Both stores' decision, once the month's (and the key's) (spent, reserved) are read under their locks:
    the global limit first, then the key's on what the global one grants. `id` is left for the store to set."""
    held: float | None = amount if limit is None else grantable(*figures, limit, amount, at_least)
    scope: Literal["global", "key"] = "global"
    spent, reserved = figures
    if held is not None and key is not None:
        by_key = grantable(*key_figures, key.limit_usd, held, at_least)
        if by_key is None or by_key < held:
            scope, (spent, reserved) = "key", key_figures
        held = by_key
    return Reservation(
        granted=held is not None,
        month=month,
        amount_usd=amount if held is None else held,
        spent_usd=spent,
        reserved_usd=reserved,
        scope=scope,
    )


@dataclass(frozen=True)
class Rollup:
    """A roll-up table: the ledger summed per (bucket, model, provider, caller), buckets `size` long."""

    table: str
    column: str
    size: timedelta


DAILY = Rollup("usage_daily", "day", timedelta(days=1))
HOURLY = Rollup("usage_hourly", "hour", HOUR)
ROLLUPS = (DAILY, HOURLY)  # coarsest first: the plan takes whole days, then whole hours, then the ledger
LEDGER = Rollup("usage_ledger", "at", timedelta(0))


def rollup_tables_sql(*, bucket: str, count: str, real: str, suffix: str = "") -> str:
    """CREATE TABLE for every roll-up, in one store's column types: the same columns in SQLite and PostgreSQL."""
    return "".join(
        f"""
    CREATE TABLE {rollup.table} (
        {rollup.column} {bucket} NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        caller TEXT NOT NULL,
        requests {count} NOT NULL,
        errors {count} NOT NULL,
        prompt_tokens {count} NOT NULL,
        completion_tokens {count} NOT NULL,
        images {count} NOT NULL,
        video_seconds {real} NOT NULL,
        cost_usd {real} NOT NULL,
        PRIMARY KEY ({rollup.column}, model, provider, caller)
    ){suffix};"""
        for rollup in (HOURLY, DAILY)
    )


# Speech characters and transcribed audio seconds: columns a later migration added to the ledger and both roll-ups
# (migration 9 on SQLite, 8 on PostgreSQL), after video_seconds in every column list below.
AUDIO_COLUMNS = {"characters": "count", "audio_seconds": "real"}


def audio_columns_sql(*, count: str, real: str) -> dict[str, dict[str, str]]:
    """table -> {column: type} the audio migration adds, in one store's column types (NOT NULL DEFAULT 0)."""
    types = {"count": count, "real": real}
    columns = {name: f"{types[kind]} NOT NULL DEFAULT 0" for name, kind in AUDIO_COLUMNS.items()}
    return {table: dict(columns) for table in (LEDGER.table, HOURLY.table, DAILY.table)}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_to(at: datetime, size: timedelta) -> datetime:
    return at - (at - _EPOCH) % size


def ceil_to(at: datetime, size: timedelta) -> datetime:
    floored = floor_to(at, size)
    return floored if floored == at else floored + size


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


def plan_usage(start: datetime, end: datetime, levels: tuple[Rollup, ...] = ROLLUPS) -> list[tuple[Rollup, Span]]:
    """Which table answers which part of [start, end): whole days from the daily roll-up, the hours around them
    from the hourly one, and only the partial hours at the very edges from the ledger itself."""
    if end <= start:
        return []
    if not levels:
        return [(LEDGER, Span(start, end))]
    level, finer = levels[0], levels[1:]
    first, last = ceil_to(start, level.size), floor_to(end, level.size)
    if first >= last:
        return plan_usage(start, end, finer)
    return [(level, Span(first, last)), *plan_usage(start, first, finer), *plan_usage(last, end, finer)]


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
    """The few SQL differences between the stores: parameter markers, and how a time column becomes a UTC day."""

    param_marker: str
    day: str  # a template with {column}


def aggregate_sql(dialect: Dialect, source: Rollup, query: UsageQuery) -> str:
    """One GROUP BY over the ledger or a roll-up for `query`'s filters; time bounds are the first two params."""
    ph = dialect.param_marker
    if source is LEDGER:
        sums = "COUNT(*), SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END)"
    else:
        sums = "SUM(requests), SUM(errors)"
    sums += ", SUM(prompt_tokens), SUM(completion_tokens), SUM(images), SUM(video_seconds), SUM(characters),"
    sums += " SUM(audio_seconds), SUM(cost_usd)"
    key = dialect.day.format(column=source.column) if query.group_by == "day" else query.group_by
    where = [f"{source.column} >= {ph}", f"{source.column} < {ph}"]
    where += [f"{column} = {ph}" for column in ("model", "caller") if getattr(query, column) is not None]
    return f"SELECT {key}, {sums} FROM {source.table} WHERE {' AND '.join(where)} GROUP BY 1"


def summary_statement(
    dialect: Dialect, query: UsageQuery, bound: Callable[[datetime], object]
) -> tuple[str, list[object]] | None:
    """The whole plan as one UNION ALL statement (one snapshot, one round trip); None for an empty period."""
    parts = plan_usage(query.start, query.end)
    if not parts:
        return None
    filters = [value for value in (query.model, query.caller) if value is not None]
    sql = " UNION ALL ".join(
        f"SELECT * FROM ({aggregate_sql(dialect, source, query)}) AS p{i}" for i, (source, _) in enumerate(parts)
    )
    params = [p for _, span in parts for p in (bound(span.start), bound(span.end), *filters)]
    return sql, params


def totals_row(row: tuple[object, ...]) -> tuple[str, UsageTotals]:
    key, requests, errors, prompt, completion, images, seconds, characters, audio, cost = row
    return str(key), UsageTotals(
        requests=int(requests or 0),  # type: ignore[call-overload]
        errors=int(errors or 0),  # type: ignore[call-overload]
        prompt_tokens=int(prompt or 0),  # type: ignore[call-overload]
        completion_tokens=int(completion or 0),  # type: ignore[call-overload]
        images=int(images or 0),  # type: ignore[call-overload]
        video_seconds=float(seconds or 0.0),  # type: ignore[arg-type]
        characters=int(characters or 0),  # type: ignore[call-overload]
        audio_seconds=float(audio or 0.0),  # type: ignore[arg-type]
        cost_usd=float(cost or 0.0),  # type: ignore[arg-type]
    )
