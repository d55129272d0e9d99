"""get_usage's answer, shaped like ARKA AI's GET /v1/usage: the period, totals, a breakdown and the budget.

Shared by the MCP tool and `genroute usage`, so both take the same filters and print the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, get_args

import anyio
from pydantic import BaseModel, Field

from mcp_server.access.principals import display_names, resolve_caller
from mcp_server.catalog import Catalog
from mcp_server.errors import ErrorBody, GatewayError, ServerFault, UpstreamTimeout, invalid_argument
from mcp_server.providers.base import ProviderAdapter, ProviderUsage
from mcp_server.store.base import BudgetStatus, GroupBy, Store, StoreUnavailable, UsageQuery, UsageSummary, UsageTotals
from mcp_server.store.usage import month_of, utcnow

Source = Literal["local", "provider"]
PROVIDER_TIMEOUT_S = 30.0
COST_DECIMALS = 8
# Report periods: the ledger starts at the epoch; the last day leaves room for "the day after" (datetime's limit).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date.max - timedelta(days=1)


class Period(BaseModel):
    start: str
    end: str


class UsageFigures(BaseModel):
    requests: int
    errors: int
    tokens_used: int
    prompt_tokens: int
    completion_tokens: int
    images: int
    video_seconds: float
    characters: int = Field(description="Characters turned into speech")
    audio_seconds: float = Field(description="Seconds of audio transcribed")
    cost_usd: float

    @classmethod
    def of(cls, totals: UsageTotals) -> UsageFigures:
        return cls(
            requests=totals.requests,
            errors=totals.errors,
            tokens_used=totals.prompt_tokens + totals.completion_tokens,
            prompt_tokens=totals.prompt_tokens,
            completion_tokens=totals.completion_tokens,
            images=totals.images,
            video_seconds=round(totals.video_seconds, 3),
            characters=totals.characters,
            audio_seconds=round(totals.audio_seconds, 3),
            cost_usd=round(totals.cost_usd, COST_DECIMALS),
        )


class BudgetFigures(BaseModel):
    month: str = Field(description="The budget month (UTC), always the current one")
    limit_usd: float | None = Field(
        description="The monthly limit ([budget] monthly_usd, or the key's own); null: none"
    )
    spent_usd: float
    reserved_usd: float = Field(description="Held by calls in flight")
    remaining_usd: float | None

    @classmethod
    def of(cls, status: BudgetStatus, limit_usd: float | None) -> BudgetFigures:
        remaining = None if limit_usd is None else max(limit_usd - status.spent_usd - status.reserved_usd, 0.0)
        return cls(
            month=status.month,
            limit_usd=limit_usd,
            spent_usd=round(status.spent_usd, COST_DECIMALS),
            reserved_usd=round(status.reserved_usd, COST_DECIMALS),
            remaining_usd=None if remaining is None else round(remaining, COST_DECIMALS),
        )


class ProviderFigures(BaseModel):
    """One provider's own usage report, or why it could not be had."""

    usage: ProviderUsage | None = None
    error: ErrorBody | None = None


class UsageReport(UsageFigures):
    period: Period
    group_by: GroupBy
    model: str | None = Field(default=None, description="The model filter, when one was given")
    caller: str | None = Field(default=None, description="The caller filter, when one was given")
    breakdown: dict[str, UsageFigures]
    budget: BudgetFigures
    key_budget: BudgetFigures | None = Field(
        default=None, description="The calling key's own month: its monthly budget (genroute keys), spent, remaining"
    )
    provider: dict[str, ProviderFigures] | None = Field(
        default=None, description="source='provider': each provider's own figures for the same period"
    )


@dataclass(frozen=True)
class ReportPeriod:
    """[start, end) in UTC, and the labels the caller's input deserves (dates stay dates)."""

    start: datetime
    end: datetime
    label: Period

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(microseconds=1)).date()


def _parse(value: str, param: str) -> date | datetime:
    text = value.strip()
    try:
        parsed: date | datetime = date.fromisoformat(text)
    except ValueError:
        try:
            parsed = _aware(datetime.fromisoformat(text))
        except ValueError:
            raise invalid_argument(
                param,
                f"{param} must be an ISO 8601 date like 2024-01-31 or date-time like 2024-01-31T12:00:00Z; "
                f"got '{value[:64]}'.",
            ) from None
        except OverflowError:  # an offset that moves the instant out of datetime's range (0001-01-01+05:00)
            raise _out_of_range(param) from None
    if not FIRST_DAY <= _day(parsed) <= LAST_DAY:
        raise _out_of_range(param)
    return parsed


def _out_of_range(param: str) -> GatewayError:
    return invalid_argument(param, f"{param} must fall between {FIRST_DAY} and {LAST_DAY} (UTC).")


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_period(start_date: str | None, end_date: str | None, now: datetime | None = None) -> ReportPeriod:
    """Dates are whole UTC days, both ends included; date-times are exact, the end excluded.
    Defaults: until now, from the first day of the end's month."""
    now = now or utcnow()
    end = _parse(end_date, "end_date") if end_date else None
    start = _parse(start_date, "start_date") if start_date else _day(end or now).replace(day=1)
    begin = start if isinstance(start, datetime) else datetime.combine(start, time(), UTC)
    if end is None:
        finish, end_label = max(now, begin), now.date().isoformat()
    elif isinstance(end, datetime):
        finish, end_label = end, end.isoformat()
    else:
        finish, end_label = datetime.combine(end + timedelta(days=1), time(), UTC), end.isoformat()
    if end is not None and (finish < begin or (not isinstance(end, datetime) and finish <= begin)):
        raise invalid_argument("end_date", f"end_date ({end.isoformat()}) is before start_date ({start.isoformat()}).")
    return ReportPeriod(begin, finish, Period(start=start.isoformat(), end=end_label))


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


async def build_report(
    store: Store,
    catalog: Catalog,
    *,
    monthly_usd: float | None,
    start_date: str | None = None,
    end_date: str | None = None,
    model: str | None = None,
    caller: str | None = None,
    group_by: str = "model",
    source: str = "local",
    adapters: dict[str, ProviderAdapter] | None = None,
    key: tuple[str, float | None] | None = None,
) -> UsageReport:
    """`key`: the calling key's identity and monthly budget, for its own budget figures."""
    if group_by not in get_args(GroupBy):
        raise invalid_argument("group_by", f"group_by must be one of {', '.join(get_args(GroupBy))}; got '{group_by}'.")
    if source not in get_args(Source):
        raise invalid_argument("source", f"source must be 'local' or 'provider'; got '{source}'.")
    period = resolve_period(start_date, end_date)
    card = catalog.get(model.strip()) if model else None
    model_id = card.id if card is not None else (model.strip() if model else None)  # retired ids still filter
    try:
        caller = await resolve_caller(store, caller) if caller else None  # a key's name -> its identity
        query = UsageQuery(start=period.start, end=period.end, model=model_id, caller=caller, group_by=group_by)  # type: ignore[arg-type]
        summary = await store.usage_summary(query)
        if group_by == "caller" or caller:
            summary, caller = await _readable(store, summary, caller)
        budget = await store.budget_status(month_of(utcnow()))
        key_budget = await store.budget_status(budget.month, caller=key[0]) if key else None
    except StoreUnavailable as exc:
        raise ServerFault(str(exc), code="store_unavailable", status=503) from None
    report = UsageReport(
        **UsageFigures.of(summary.totals).model_dump(),
        period=period.label,
        group_by=query.group_by,
        model=model_id,
        caller=caller,
        breakdown={key: UsageFigures.of(totals) for key, totals in summary.breakdown.items()},
        budget=BudgetFigures.of(budget, monthly_usd),
        key_budget=BudgetFigures.of(key_budget, key[1]) if key and key_budget else None,
    )
    if source == "provider":
        wanted = {card.provider} if card is not None else None
        report.provider = await provider_figures(adapters or {}, period, wanted)
    return report


async def _readable(store: Store, summary: UsageSummary, caller: str | None) -> tuple[UsageSummary, str | None]:
    """Callers as people read them (a key's name, not its identity); two that read alike are added together."""
    names = await display_names(store, [*summary.breakdown, *([caller] if caller else [])])
    breakdown: dict[str, UsageTotals] = {}
    for identity, totals in summary.breakdown.items():
        name = names[identity]
        breakdown[name] = breakdown[name].add(totals) if name in breakdown else totals
    return UsageSummary(totals=summary.totals, breakdown=dict(sorted(breakdown.items()))), names.get(caller or "")


async def provider_figures(
    adapters: dict[str, ProviderAdapter], period: ReportPeriod, only: set[str] | None = None
) -> dict[str, ProviderFigures]:
    """Every provider's own report for the period's days, asked concurrently, each bounded in time."""
    figures: dict[str, ProviderFigures] = {}

    async def ask(name: str, adapter: ProviderAdapter) -> None:
        try:
            with anyio.fail_after(PROVIDER_TIMEOUT_S):
                figures[name] = ProviderFigures(usage=await adapter.usage_report(period.first_day, period.last_day))
        except GatewayError as error:
            figures[name] = ProviderFigures(error=error.body())
        except TimeoutError:
            late = UpstreamTimeout(name, f"sent no usage report within {PROVIDER_TIMEOUT_S:.0f} s.")
            figures[name] = ProviderFigures(error=late.body())

    async with anyio.create_task_group() as group:
        for name, adapter in adapters.items():
            if only is None or name in only:
                group.start_soon(ask, name, adapter)
    return dict(sorted(figures.items()))
