"""The accountant: the budget guard before a provider call and the ledger entry after it.

`Router.run` wraps the call in `accountant.metered(...)`: on entry the call's estimated cost is checked against
the model's `max_usd_per_call` (and the key's, access/policy.py) and reserved against `[budget] monthly_usd` and
the key's own monthly budget, both in one store transaction (a refusal is recorded and raised as a 402); on exit
one ledger record is written, whatever happened, and settles the reservation to the actual cost.
A chat call under a budget carries an `AnswerAllowance`: it reserves what the money left affords, down to
`[budget] min_answer_tokens`, and its answer is bounded to that (usage/allowance.py). Under any budget a model
without a price (and not `free`) is refused: its cost could not be kept within it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

import anyio

from mcp_server.access.policy import UNRESTRICTED, KeyPolicy
from mcp_server.catalog import ModelCard
from mcp_server.config import BudgetConfig
from mcp_server.errors import BudgetRefused, GatewayError, ServerFault
from mcp_server.observability.observer import Observer
from mcp_server.providers.keys import SERVED_KEY
from mcp_server.store.base import Store, StoreUnavailable, UsageRecord
from mcp_server.store.usage import COST_EPSILON, month_of, utcnow
from mcp_server.usage.allowance import AnswerAllowance, Limit, needs_text, unpriced_error
from mcp_server.usage.cost import Quantities, cost, default_estimate, estimate_tokens, measure, price, usd
from mcp_server.usage.held_writes import HELD_WRITES

log = logging.getLogger("genroute.usage")


class Answered(Protocol):
    """What the router hands back after a call (its `Routed`): the value and the card that produced it."""

    @property
    def value(self) -> object: ...

    @property
    def card(self) -> ModelCard: ...

    @property
    def latency_ms(self) -> float: ...


@dataclass
class Meter:
    """One call being accounted for. The router tells it the answer with `done`; the rest is the accountant's."""

    card: ModelCard
    tool: str
    caller: str
    job_id: str | None
    estimate: Quantities
    estimate_usd: float
    reservation_id: str | None = None
    started: float = field(default_factory=time.perf_counter)
    answer: Answered | None = None
    allowance: AnswerAllowance | None = None  # chat: the answer's length under a budget
    policy: KeyPolicy = UNRESTRICTED  # the calling key's own limits

    def done(self, answer: Answered) -> None:
        self.answer = answer

    def record(self, outcome: str, *, used: Quantities | None = None, cost_usd: float = 0.0) -> UsageRecord:
        card = self.answer.card if self.answer is not None else self.card
        used = used or Quantities()
        latency = self.answer.latency_ms if self.answer is not None else (time.perf_counter() - self.started) * 1e3
        return UsageRecord(
            tool=self.tool,
            model=card.id,
            provider=card.provider,
            upstream_model=card.upstream,
            outcome=outcome,
            prompt_tokens=used.prompt_tokens,
            completion_tokens=used.completion_tokens,
            images=used.images,
            video_seconds=used.video_seconds,
            characters=used.characters,
            audio_seconds=used.audio_seconds,
            cost_usd=max(cost_usd, 0.0),
            latency_ms=max(latency, 0.0),
            caller=self.caller,
            job_id=self.job_id,
            api_key_env=SERVED_KEY.get(),  # set by the last attempt's request (providers/keys.py)
        )

    def success(self) -> UsageRecord:
        if self.answer is None:
            return self.record("ok")
        used = self._unstated_from_estimate(measure(self.answer.value))
        return self.record("ok", used=used, cost_usd=cost(self.answer.card, used))

    def _unstated_from_estimate(self, used: Quantities) -> Quantities:
        """What the answer does not state is charged as estimated, never as free: token counts an upstream left
        out (some streams), the seconds of a video whose submission answer gives no duration."""
        update: dict[str, float] = {}
        text = getattr(self.answer.value if self.answer else None, "content", None)
        if isinstance(text, str) and text and not (used.prompt_tokens or used.completion_tokens):
            update = {"prompt_tokens": self.estimate.prompt_tokens, "completion_tokens": estimate_tokens(text)}
        if not used.video_seconds and self.estimate.video_seconds and self.card.kind == "video":
            update["video_seconds"] = self.estimate.video_seconds
        return used.model_copy(update=update) if update else used

    def failure(self, error: BaseException) -> UsageRecord:
        """Failed calls cost nothing, unless the upstream billed it: then the estimate is the best figure."""
        if isinstance(error, GatewayError):
            billed = self.estimate_usd if error.billed else 0.0
            return self.record(error.code or error.type or "error", cost_usd=billed)
        if isinstance(error, anyio.get_cancelled_exc_class()):
            return self.record("cancelled")
        return self.record("internal_error")


class Accountant:
    """Budget guard and ledger writer over a store; without a store it only applies the per-call limit."""

    def __init__(
        self, store: Store | None, budget: BudgetConfig | None = None, observer: Observer | None = None
    ) -> None:
        self.store = store
        self.budget = budget or BudgetConfig()
        self.observer = observer or Observer()

    def metered(
        self,
        card: ModelCard,
        *,
        tool: str,
        caller: str,
        estimate: Quantities | None = None,
        job_id: str | None = None,
        enabled: bool = True,
        allowance: AnswerAllowance | None = None,
        policy: KeyPolicy = UNRESTRICTED,
    ) -> Metered:
        """`async with accountant.metered(...) as meter:` around one call (see `Metered`)."""
        estimate = estimate or default_estimate(card)
        meter = Meter(card, tool, caller, job_id, estimate, price(card, estimate), allowance=allowance, policy=policy)
        return Metered(self, meter, enabled)

    @property
    def monthly(self) -> float | None:
        """The monthly limit, when there is a store to hold it."""
        return self.budget.monthly_usd if self.store is not None else None

    def _monthly_applies(self, policy: KeyPolicy) -> bool:
        return self.store is not None and (self.budget.monthly_usd is not None or policy.monthly_usd is not None)

    async def _admit(self, meter: Meter) -> None:
        card, policy = meter.card, meter.policy
        per_call = _per_call(card, policy)
        if card.free or (per_call is None and not self._monthly_applies(policy)):
            return  # no budget applies
        if not card.priced:
            await self._refuse(meter, unpriced_error(card))
        if meter.allowance is not None:
            await self._admit_answer(meter, meter.allowance, per_call)
            return
        estimate_usd = meter.estimate_usd
        if per_call is not None and estimate_usd > per_call[0] + COST_EPSILON:
            await self._refuse(
                meter,
                BudgetRefused(
                    f"Refused: this call to '{card.id}' is estimated at {usd(estimate_usd)}, above {per_call[1]}. "
                    f"Ask for less (max_tokens, n or duration) or {per_call[2]}."
                ),
            )
        if self._monthly_applies(policy) and estimate_usd > 0:
            await self._reserve(meter, estimate_usd, None, lambda: f"estimated at {usd(estimate_usd)}")

    async def _admit_answer(self, meter: Meter, allowance: AnswerAllowance, per_call: _Ceiling | None) -> None:
        """Reserve what the answer may cost, as much as the money left affords down to min_answer_tokens."""
        card, policy = meter.card, meter.policy
        allowance.min_tokens = self.budget.min_answer_tokens
        want, need = allowance.want_usd(card), allowance.need_usd(card)
        limit: Limit = "key_monthly_usd" if self.monthly is None and policy.monthly_usd is not None else "monthly_usd"
        if per_call is not None:
            ceiling, named, remedy, setting = per_call
            if need > ceiling + COST_EPSILON:
                await self._refuse(
                    meter,
                    BudgetRefused(
                        f"Refused: this call to '{card.id}' {needs_text(card, allowance)}, above {named}. "
                        f"Shorten the prompt or {remedy}."
                    ),
                )
            if want > ceiling or not self._monthly_applies(policy):
                want, limit = min(want, ceiling), setting
        granted = want
        if self._monthly_applies(policy) and want > 0:
            granted, cut_by = await self._reserve(meter, want, need, lambda: needs_text(card, allowance))
            if granted < want - COST_EPSILON:
                limit = cut_by
        allowance.grant(granted, limit)
        meter.estimate, meter.estimate_usd = allowance.estimate(card), granted

    async def _reserve(
        self, meter: Meter, amount: float, at_least: float | None, needs: Callable[[], str]
    ) -> tuple[float, Limit]:
        """Reserve `amount` (or what is left, if at least `at_least`) against the month and the key's month; the
        amount held and the budget that decided it. `needs` says what the call needs, for the refusal (built only
        then: this runs on every paid call)."""
        store, policy = self.store, meter.policy
        if store is None:
            return amount, "monthly_usd"
        month = month_of(utcnow())
        try:
            reservation = await store.reserve_budget(month, self.monthly, amount, at_least=at_least, key=policy.budget)
        except StoreUnavailable as exc:
            raise ServerFault(
                f"Paid calls are paused: the monthly budget cannot be checked ({exc}). Try again shortly.",
                code="store_unavailable",
                status=503,
            ) from None
        by_key = reservation.scope == "key"
        if not reservation.granted:
            held = reservation.reserved_usd
            in_flight = f" plus {usd(held)} reserved by calls in flight" if held else ""
            if by_key:
                whose = (
                    f"the monthly budget of key '{policy.key}' would be exceeded. Limit {usd(policy.monthly_usd or 0)}"
                )
                remedy = f"Raise it (genroute keys update {policy.key} --monthly-usd X)"
            else:
                whose = f"the monthly budget would be exceeded. Limit {usd(self.monthly or 0)} ([budget] monthly_usd)"
                remedy = "Raise the limit"
            await self._refuse(
                meter,
                BudgetRefused(
                    f"Refused: {whose}, spent in {month} {usd(reservation.spent_usd)}{in_flight}, this call to "
                    f"'{meter.card.id}' {needs()}. {remedy}, ask for less, or use a cheaper model."
                ),
            )
        meter.reservation_id = reservation.id
        return reservation.amount_usd, "key_monthly_usd" if by_key else "monthly_usd"

    async def _refuse(self, meter: Meter, refusal: BudgetRefused) -> None:
        self.observer.refused(refusal.code)
        await self._write(meter.record(refusal.code), None)
        raise refusal

    async def _write(self, record: UsageRecord, reservation_id: str | None) -> None:
        """Write one ledger entry (the store finishes it even while the call is being cancelled); a store failure
        is logged, not raised (the provider has answered: failing the call now would waste what was paid for).
        Over HTTP it may be held until the answer is sent (held_writes.py)."""
        self.observer.recorded(record)
        if self.store is None:
            return
        held = HELD_WRITES.get() if self.store.writes_after_answer else None
        if held is None or not held.hold(lambda: self._store_write(record, reservation_id)):
            await self._store_write(record, reservation_id)

    async def _store_write(self, record: UsageRecord, reservation_id: str | None) -> None:
        assert self.store is not None
        try:
            await self.store.record_usage(record, reservation_id=reservation_id)
        except StoreUnavailable as exc:
            log.error("could not record usage of %s on %s (%s): %s", record.tool, record.model, record.outcome, exc)
        except Exception:
            log.exception("could not record usage of %s on %s (%s)", record.tool, record.model, record.outcome)


_Ceiling = tuple[float, str, str, Limit]  # (USD, how a refusal names it, how to raise it, the setting)


def _per_call(card: ModelCard, policy: KeyPolicy) -> _Ceiling | None:
    """The lowest ceiling on one call: the model's max_usd_per_call or the key's, whichever is lower."""
    ceilings: list[_Ceiling] = []
    if card.max_usd_per_call is not None:
        ceilings.append(
            (
                card.max_usd_per_call,
                f"the model's max_usd_per_call of {usd(card.max_usd_per_call)}",
                "raise max_usd_per_call in the config",
                "max_usd_per_call",
            )
        )
    if policy.max_usd_per_call is not None:
        ceilings.append(
            (
                policy.max_usd_per_call,
                f"the max_usd_per_call of key '{policy.key}', {usd(policy.max_usd_per_call)}",
                f"raise it (genroute keys update {policy.key} --max-usd-per-call X)",
                "key_max_usd_per_call",
            )
        )
    return min(ceilings, key=lambda ceiling: ceiling[0]) if ceilings else None


class Metered:
    """One call's accounting as an async context manager: on entry the call is admitted (or refused, recorded and
    raised); on exit its ledger record is written, a failure record when the call raised (cancellation too).
    A plain class, not an @asynccontextmanager generator: it wraps every provider call, and the generator's
    machinery (an async generator, its event loop hooks, a wrapper object) cost about 10 us a call in a hot loop.
    """

    __slots__ = ("accountant", "enabled", "meter")

    def __init__(self, accountant: Accountant, meter: Meter, enabled: bool) -> None:
        self.accountant = accountant
        self.meter = meter
        self.enabled = enabled  # False: no budget check, no record (free calls that are part of another one)

    async def __aenter__(self) -> Meter:
        SERVED_KEY.set(None)  # not a key an earlier call in this task used
        if self.enabled:
            await self.accountant._admit(self.meter)
        return self.meter

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if not self.enabled:
            return
        meter = self.meter
        record = meter.success() if error is None else meter.failure(error)
        await self.accountant._write(record, meter.reservation_id)
