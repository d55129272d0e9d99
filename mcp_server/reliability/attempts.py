"""The one retry loop: a logical call tried on its model, retried, then on the model's fallbacks.

Order of events for one call: for each candidate (the model, then its `fallbacks` in order; a provider
cooling down is skipped while a later candidate is not), attempt; on a RETRY verdict wait (Retry-After or
backoff) and attempt again up to `max_retries` times; on FALLBACK, or once retries are used up, go to the
next candidate; on FAIL stop. Every attempt's outcome feeds the health tracker. The whole call, waits
included, ends by `deadline_s`. A submission marked not `resend_if_lost` (paid video) whose answer was
lost is never sent again, here or elsewhere, unless its provider honours Idempotency-Key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

import anyio

from mcp_server.catalog import Catalog, ModelCard, Visible
from mcp_server.config import ProviderConfig, RoutingConfig
from mcp_server.errors import (
    DeadlineExceeded,
    GatewayError,
    InsufficientBalance,
    KeyRefused,
    MissingApiKey,
    RateLimited,
    ServerFault,
    SubmissionOutcomeUnknown,
    UpstreamHTTPError,
)
from mcp_server.observability.observer import Observer
from mcp_server.providers.keys import SERVED_KEY, KeyPool
from mcp_server.reliability.health import Health
from mcp_server.reliability.retry import RetryPolicy, Verdict, classify
from mcp_server.text import a_or_an

T = TypeVar("T")
log = logging.getLogger("genroute.router")


@dataclass(frozen=True)
class Attempted(Generic[T]):
    """A successful call: the value, the card that answered, and how it got there."""

    value: T
    card: ModelCard
    fallback_from: str | None  # the model asked for, when a fallback answered instead
    attempts: int


@dataclass
class _Trail:
    """What was tried so far in one logical call, for the final error and the logs."""

    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[ModelCard, GatewayError]] = field(default_factory=list)
    note: str | None = None
    attempts: int = 0  # records that were attempts, not skips

    def add(self, card: ModelCard, error: GatewayError | None) -> None:
        record: dict[str, Any] = {"model": card.id, "provider": card.provider}
        if error is not None:
            record |= {"status": error.status, "code": error.code}
            self.errors.append((card, error))
        self.records.append(record)
        self.attempts += 1

    def skip(self, card: ModelCard, reason: str, error: GatewayError | None = None) -> None:
        """A candidate not attempted; with `error`, one the caller is told about if nothing else answers."""
        self.records.append({"model": card.id, "provider": card.provider, "skipped": reason})
        if error is not None:
            self.errors.append((card, error))


# What one key of several is refused for: set aside, the provider's other keys carry on (providers/keys.py).
_KEY_FAILURES = (KeyRefused, InsufficientBalance, RateLimited)


class _Step(Enum):
    AGAIN = "again"  # at once, with another of the provider's keys: no wait, no retry counted
    RETRY = "retry"
    NEXT = "next"  # the next candidate, if any
    STOP = "stop"


class Reliability:
    """Retry policy, fallbacks, cooldown and deadline for the router; one instance per gateway."""

    def __init__(
        self,
        catalog: Catalog,
        routing: RoutingConfig | None = None,
        providers: dict[str, ProviderConfig] | None = None,
        observer: Observer | None = None,
        key_pools: dict[str, KeyPool] | None = None,
        *,
        health: Health | None = None,
    ) -> None:
        """`health`: the tracker of the configuration this one replaces (a reload), kept with its counts."""
        self.catalog = catalog
        self.routing = routing or RoutingConfig()
        self.providers = providers or {}
        self.observer = observer or Observer()
        self.key_pools = {name: pool for name, pool in (key_pools or {}).items() if pool.several}
        if health is None:
            health = Health(self.cooldown_s, key_pools=self.key_pools)
        else:
            health.configure(self.cooldown_s, self.key_pools)
        self.health = health
        # Providers none of whose key variables is set (read once, as the adapters read their keys): calls routed
        # to them fail before anything is sent, and their fallbacks are tried.
        self.missing_keys = {
            name: " or ".join(provider.key_envs())
            for name, provider in self.providers.items()
            if provider.key_envs() and provider.api_key() is None
        }
        self.health.on_cooldown = self.observer.cooled_down

    def cooldown_s(self, provider: str) -> float:
        override = self.providers.get(provider)
        if override is not None and override.cooldown_s is not None:
            return override.cooldown_s
        return self.routing.cooldown_s

    def policy(self, provider: str) -> RetryPolicy:
        return RetryPolicy.for_provider(self.routing, self.providers.get(provider))

    def candidates(self, card: ModelCard, visible: Visible | None = None) -> list[ModelCard]:
        """The model, then each of its fallbacks (resolved through the catalog, same kind, no repeats); only those
        `visible` to the caller (a key's allowlist), when given."""
        chain = [card]
        for name in card.fallbacks:
            fallback = self.catalog.get(name)
            if fallback is not None and visible is not None and not visible(fallback):
                continue  # not a model for this caller: never reached, not even through a fallback
            if fallback is None or fallback.kind != card.kind:
                log.warning(
                    "model %s: fallback %s is not %s model in the catalog; skipped", card.id, name, a_or_an(card.kind)
                )
                continue
            if all(fallback.id != known.id for known in chain):
                chain.append(fallback)
        return chain

    async def attempt(
        self,
        card: ModelCard,
        call: Callable[[ModelCard], Awaitable[T]],
        *,
        resend_if_lost: bool = True,
        visible: Visible | None = None,
    ) -> Attempted[T]:
        """Run `call` until one candidate answers; raise the most useful GatewayError otherwise."""
        deadline = anyio.current_time() + self.routing.deadline_s
        chain = self.candidates(card, visible)
        trail = _Trail()
        for index, candidate in enumerate(chain):
            has_later = index + 1 < len(chain)
            if candidate.provider in self.missing_keys:
                trail.skip(candidate, "missing_api_key", self._missing_key(candidate))
                continue
            if self._skip(candidate, chain[index + 1 :], trail):
                continue
            if index:
                self.observer.fell_back(card.id, candidate.id)
            retry = 0
            while True:
                try:
                    value = await self._once(candidate, call, deadline, resend_if_lost, retry)
                except GatewayError as error:
                    policy = self.policy(candidate.provider)  # only failures need it
                    step, reported = self._decide(candidate, error, retry, policy, has_later, resend_if_lost)
                    trail.add(candidate, reported)
                    if step is _Step.AGAIN:
                        continue
                    if step is _Step.STOP:
                        raise self._final(trail, reported) from None
                    if step is _Step.RETRY and await self._wait(policy, error, retry, deadline, trail):
                        retry += 1
                        self.observer.retried(candidate.provider)
                        continue
                    break  # on to the next fallback
                self.health.record_success(candidate.provider)
                trail.add(candidate, None)
                if len(trail.records) > 1:
                    log.info("%s answered for %s; attempts: %s", candidate.id, card.id, trail.records)
                return Attempted(value, candidate, None if candidate.id == card.id else card.id, trail.attempts)
        raise self._final(trail, None) from None

    def _skip(self, candidate: ModelCard, later: list[ModelCard], trail: _Trail) -> bool:
        """A provider cooling down is skipped while a later candidate's provider is not."""
        if not self.health.cooling_down(candidate.provider):
            return False
        if all(self.health.cooling_down(c.provider) for c in later):
            return False
        log.info("skipping %s: provider %s is cooling down", candidate.id, candidate.provider)
        trail.skip(candidate, "cooling_down")
        return True

    def _decide(
        self,
        candidate: ModelCard,
        error: GatewayError,
        retry: int,
        policy: RetryPolicy,
        has_later: bool,
        resend_if_lost: bool,
    ) -> tuple[_Step, GatewayError]:
        """What to do after a failed attempt, and the error to report for it."""
        if isinstance(error, DeadlineExceeded):  # the caller's time budget, not the provider's fault
            return _Step.STOP, error
        provider = candidate.provider
        if isinstance(error, _KEY_FAILURES) and self._another_key(provider, error):
            return _Step.AGAIN, error
        if error.provider_fault:
            self.health.record_failure(provider, error)
        verdict = classify(error)
        if verdict is Verdict.FAIL:
            return _Step.STOP, error
        can_retry = verdict is Verdict.RETRY and retry < policy.max_retries
        if not resend_if_lost and error.may_have_run:
            # A paid job may exist upstream: sending it again (or elsewhere) could pay twice.
            if can_retry and self.honours_idempotency_key(provider):  # same operation, so the same Idempotency-Key
                return _Step.RETRY, error
            return _Step.STOP, _outcome_unknown(candidate, error)
        if verdict is Verdict.RETRY and policy.asks_too_long(error):
            return _Step.NEXT, _too_long(error, policy)
        if can_retry and not (has_later and self.health.cooling_down(provider)):
            return _Step.RETRY, error
        return _Step.NEXT, error

    def _another_key(self, provider: str, error: GatewayError) -> bool:
        """Set the key that was refused aside, when the provider has several: True when another is ready. Every
        refusal sets one key aside, so a call tries each key at most once before the provider's own rules apply."""
        pool, cooldown = self.key_pools.get(provider), self.cooldown_s(provider)
        if pool is None or cooldown <= 0:
            return False
        served = SERVED_KEY.get()
        reason = f"the provider answered HTTP {error.status} ({error.code or error.type})"
        ready = pool.cool(served, cooldown, reason)
        log.info("provider %s: key %s set aside for %g s: %s", provider, served, cooldown, reason)
        return ready

    async def _once(
        self,
        candidate: ModelCard,
        call: Callable[[ModelCard], Awaitable[T]],
        deadline: float,
        resend_if_lost: bool,
        retry: int = 0,
    ) -> T:
        time_left = anyio.current_time() < deadline
        SERVED_KEY.set(None)  # this attempt's request names its key, if it has one
        if time_left:
            # the deadline as is: no second clock read for a delay
            with anyio.CancelScope(deadline=deadline), self.observer.attempt(candidate.provider, candidate.id, retry):
                return await call(candidate)
        # Out of time: during the call (which may have reached the provider), or before it was sent.
        raise _deadline_error(self.routing.deadline_s, candidate, in_flight=time_left, lost=not resend_if_lost)

    async def _wait(self, policy: RetryPolicy, error: GatewayError, retry: int, deadline: float, trail: _Trail) -> bool:
        """Sleep before the next retry; False (no retry) when the wait would pass the deadline."""
        wait = policy.wait_s(error, retry)
        if anyio.current_time() + wait >= deadline:
            trail.note = "no time left for another retry within deadline_s"
            return False
        trail.records[-1]["waited_s"] = round(wait, 3)
        await anyio.sleep(wait)
        return True

    def _missing_key(self, card: ModelCard) -> GatewayError:
        variable = self.missing_keys[card.provider]
        return MissingApiKey(
            f"Provider '{card.provider}' has no API key: the environment variable {variable} is not set where "
            f"genroute runs, so nothing was sent to it. Set {variable} (for Claude Desktop: in the server's "
            '"env") and restart genroute.'
        )

    def honours_idempotency_key(self, provider: str) -> bool:
        config = self.providers.get(provider)
        return config is not None and config.honours_idempotency_key

    def _final(self, trail: _Trail, error: GatewayError | None) -> GatewayError:
        """One error for the caller: the decisive failure, plus what else was tried."""
        if error is None:
            if not trail.errors:  # every candidate skipped cannot happen (the last is never skipped)
                return ServerFault("No route could serve this call.", code="no_route", status=503)
            error = trail.errors[0][1]
        decisive = next((card.id for card, e in trail.errors if e is error), None)
        last_by_model = {card.id: f"{card.id} ({card.provider}): {_short(e)}" for card, e in trail.errors}
        tried = [text for model, text in last_by_model.items() if model != decisive]
        message = error.message
        if trail.attempts > 1:
            message += f" [{trail.attempts} attempts]"
        if tried:
            message += " Also tried: " + "; ".join(tried) + "."
        skipped = [f"{r['model']} ({r['provider']})" for r in trail.records if r.get("skipped") == "cooling_down"]
        if skipped:
            message += f" Skipped, its provider cooling down after recent failures: {', '.join(skipped)}."
        if trail.note:
            message += f" ({trail.note})"
        return error.with_context(message=message, attempts=trail.records)


def _short(error: GatewayError) -> str:
    """`HTTP 503 service_unavailable`, or just the code of a failure that had no HTTP error answer."""
    if isinstance(error, UpstreamHTTPError):
        return f"HTTP {error.status} {error.code or error.type}"
    return error.code or error.type


def _deadline_error(deadline_s: float, card: ModelCard, *, in_flight: bool, lost: bool) -> DeadlineExceeded:
    note = " The submission may already have reached the provider; it was not sent again." if in_flight and lost else ""
    return DeadlineExceeded(
        f"The call to {card.id} ({card.provider}) did not finish within deadline_s = {deadline_s:g} s, "
        f"retries and waits included.{note} Try again, or raise [routing] deadline_s.",
        request_sent=in_flight,
    )


def _too_long(error: GatewayError, policy: RetryPolicy) -> GatewayError:
    asked = (
        f" The provider asked to wait {error.retry_after_s:g} s before trying again, longer than retry_after_cap_s = "
        f"{policy.retry_after_cap_s:g} s, so genroute did not wait; retry after that time."
    )
    return error.with_context(message=error.message + asked)


def _outcome_unknown(card: ModelCard, error: GatewayError) -> SubmissionOutcomeUnknown:
    return SubmissionOutcomeUnknown(
        f"The submission to {card.id} ({card.provider}) was sent, but its answer was lost ({_short(error)}): "
        "the job may exist upstream and may be billed. genroute did not submit it again, to any provider, to avoid "
        "paying twice. Check the provider's dashboard or job list before submitting again.",
        status=error.status,
        retry_after_s=error.retry_after_s,
    )
