"""The dashboard's figures, each scoped to the signed-in caller: an admin sees everything, a key only its own.

Spend comes from the same report code as get_usage and `genroute usage` (usage/report.py), jobs, media and calls
from the store. No SQL here; nothing here knows about HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from mcp_server.access.principals import Caller, display_names, key_identity, resolve_caller
from mcp_server.gateway import Gateway
from mcp_server.reliability.health import ProviderHealth
from mcp_server.store import JobRecord
from mcp_server.store.media_index import CallFilter
from mcp_server.store.usage import month_of, utcnow
from mcp_server.usage.report import BudgetFigures, UsageReport, build_report

CHART_DAYS = 30
COST_DECIMALS = 6


class Me(BaseModel):
    name: str
    admin: bool
    auth: bool


class Spend(BaseModel):
    month: str
    spent_usd: float  # this caller's (everyone's for an admin) spend this month
    budget: BudgetFigures  # the server's monthly budget, spent by everyone
    days: list[str]  # the chart's days, oldest first
    by_model: dict[str, list[float]]  # model -> cost per day, aligned with `days`


class Call(BaseModel):
    at: datetime
    tool: str
    model: str
    caller: str
    outcome: str
    latency_ms: float
    cost_usd: float


class Job(BaseModel):
    id: str
    model: str
    caller: str
    status: str
    progress: float | None
    age_s: float
    video: str | None  # the media id of the finished file
    error: str | None


class Media(BaseModel):
    id: str
    kind: str
    model: str
    caller: str
    mime_type: str
    bytes: int
    created_at: datetime


class KeyRow(BaseModel):
    name: str
    admin: bool
    rate_limit_per_min: int | None
    created_at: datetime
    last_used_at: datetime | None
    month_requests: int
    month_spend_usd: float


def _scope(caller: Caller) -> str | None:
    return None if caller.admin else caller.id


async def spend(gateway: Gateway, caller: Caller, now: datetime | None = None) -> Spend:
    now = now or utcnow()
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=CHART_DAYS - 1)
    report = await _report(gateway, caller, start_date=today.replace(day=1).isoformat())
    models = await _report(gateway, caller, start_date=first.isoformat(), group_by="model")
    days = [(first + timedelta(days=i)).isoformat() for i in range(CHART_DAYS)]
    by_model: dict[str, list[float]] = {}
    for model, figures in models.breakdown.items():
        if figures.cost_usd <= 0:
            continue
        daily = await _report(gateway, caller, start_date=first.isoformat(), group_by="day", model=model)
        by_model[model] = [round(daily.breakdown[d].cost_usd, COST_DECIMALS) if d in daily.breakdown else 0.0
                           for d in days]  # fmt: skip
    return Spend(month=month_of(now), spent_usd=report.cost_usd, budget=report.budget, days=days, by_model=by_model)


async def _report(gateway: Gateway, caller: Caller, **filters: str) -> UsageReport:
    return await build_report(
        gateway.store, gateway.catalog, monthly_usd=gateway.config.budget.monthly_usd, caller=_scope(caller), **filters
    )


async def calls(gateway: Gateway, caller: Caller, *, model: str = "", who: str = "", outcome: str = "") -> list[Call]:
    """The newest calls; `who` (admins only) takes a key's name or an identity, as get_usage's caller does."""
    store = gateway.store
    scope = _scope(caller)
    if scope is None and who:
        scope = await resolve_caller(store, who)
    wanted = CallFilter(caller=scope, model=model or None, outcome=outcome or None, limit=100)
    records = await store.recent_calls(wanted)
    names = await display_names(store, sorted({r.caller for r in records}))
    return [
        Call(at=r.at, tool=r.tool, model=r.model, caller=names[r.caller], outcome=r.outcome,
             latency_ms=round(r.latency_ms, 1), cost_usd=round(r.cost_usd, COST_DECIMALS))
        for r in records
    ]  # fmt: skip


async def jobs(gateway: Gateway, caller: Caller, now: datetime | None = None) -> list[Job]:
    now = now or utcnow()
    found: list[JobRecord] = await gateway.store.list_jobs(limit=30, caller=caller.jobs_scope)
    names = await display_names(gateway.store, sorted({job.caller for job in found}))
    return [
        Job(
            id=job.id, model=job.model, caller=names[job.caller], status=job.status, progress=job.progress,
            age_s=round((now - job.created_at).total_seconds(), 1),
            video=job.result.video.id if job.result and job.result.video else None,
            error=job.error.message if job.error else None,
        )
        for job in found
    ]  # fmt: skip


async def media(gateway: Gateway, caller: Caller) -> list[Media]:
    records = await gateway.store.list_media(caller=_scope(caller), limit=60)
    names = await display_names(gateway.store, sorted({r.caller for r in records}))
    return [Media(**r.model_dump(exclude={"caller", "tool"}), caller=names[r.caller]) for r in records]


async def may_open(gateway: Gateway, caller: Caller, media_id: str) -> bool:
    """A file this caller may open: its own, or any for an admin (files made before records were kept have none:
    admins only). False also hides whether another key's file exists."""
    if caller.admin:
        return True
    record = await gateway.store.get_media(media_id)
    return record is not None and record.caller == caller.id


def health(gateway: Gateway, caller: Caller) -> list[ProviderHealth]:
    """Every provider's state; the last error (which may name upstream details) for admins only."""
    snapshot = gateway.router.reliability.health.snapshot(list(gateway.router.adapters))
    if caller.admin:
        return snapshot
    return [h.model_copy(update={"last_error": None, "last_error_at": None, "cooldown_reason": None}) for h in snapshot]


async def keys(gateway: Gateway, now: datetime | None = None) -> list[KeyRow]:
    """Admins only (the route checks): every active key, its limits and this month's spend."""
    now = now or utcnow()
    report = await build_report(
        gateway.store, gateway.catalog, monthly_usd=None, start_date=now.date().replace(day=1).isoformat(),
        group_by="caller",
    )  # fmt: skip
    active = await gateway.store.list_keys(include_revoked=False)
    labels = await display_names(gateway.store, [key_identity(key.id) for key in active])
    rows = []
    for key in active:
        label = labels[key_identity(key.id)]
        figures = report.breakdown.get(label)
        rows.append(
            KeyRow(
                name=label, admin=key.admin, rate_limit_per_min=key.rate_limit_per_min, created_at=key.created_at,
                last_used_at=key.last_used_at, month_requests=figures.requests if figures else 0,
                month_spend_usd=figures.cost_usd if figures else 0.0,
            )
        )  # fmt: skip
    return rows
