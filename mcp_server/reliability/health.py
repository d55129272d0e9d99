"""Per-provider health over a sliding minute, and the cooldown that lets fallbacks take over.

LiteLLM's rule: a provider that failed at least half of its calls in the last minute (and at least three
of them) is skipped for `cooldown_s`; a 401 skips it at once, since every call would fail the same way.
Counts are kept in one-second buckets, so memory stays bounded under any load. Each server process judges
the providers by its own calls; the cooldowns it starts are shared with the other processes on its store, and
theirs adopted, by reliability/shared_cooldowns.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from mcp_server.errors import GatewayError, KeyRefused, UpstreamError
from mcp_server.providers.keys import KeyPool, KeyState

WINDOW_S = 60
MIN_FAILURES = 3
FAILURE_RATE = 0.5
ERROR_TEXT = 300
OWN_COOLDOWN_SLACK_S = 1.0


class ProviderHealth(BaseModel):
    """One provider's health as status://providers and `genroute check` show it."""

    provider: str
    state: Literal["ok", "degraded", "cooling_down"]
    calls_last_minute: int
    failures_last_minute: int
    failure_rate: float
    cooling_down_until: datetime | None = None
    cooldown_reason: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    keys: list[KeyState] | None = None  # a provider with several keys: each one's state, by variable name

    def aged(self, age_s: float, now: datetime) -> ProviderHealth:
        """This view read `age_s` seconds after it was taken: counts older than the window are gone,
        and a cooldown that has ended is over (an idle server writes no newer report)."""
        if age_s < WINDOW_S and (self.cooling_down_until is None or self.cooling_down_until > now):
            return self
        cooling = self.cooling_down_until is not None and self.cooling_down_until > now
        if age_s < WINDOW_S:
            state = "degraded" if self.failures_last_minute else "ok"
            return self.model_copy(update={"state": state, "cooling_down_until": None, "cooldown_reason": None})
        return self.model_copy(
            update={
                "state": "cooling_down" if cooling else "ok",
                "calls_last_minute": 0,
                "failures_last_minute": 0,
                "failure_rate": 0.0,
                "cooling_down_until": self.cooling_down_until if cooling else None,
                "cooldown_reason": self.cooldown_reason if cooling else None,
                "last_error": self.last_error if cooling else None,
                "last_error_at": self.last_error_at if cooling else None,
            }
        )

    def summary(self) -> str:
        """One line for people: `ok`, or the failure rate, the cooldown and the last error."""
        counts = f"{self.failures_last_minute} of {self.calls_last_minute} calls failed in the last minute"
        if self.state == "ok":
            return f"ok ({counts})" if self.calls_last_minute else "ok (no calls in the last minute)"
        head = (
            f"cooling down until {self.cooling_down_until:%Y-%m-%d %H:%M:%S} UTC: {self.cooldown_reason}; now {counts}"
            if self.state == "cooling_down" and self.cooling_down_until
            else f"degraded: {counts}"
        )
        return f"{head}; last error: {self.last_error}" if self.last_error else head


@dataclass
class _Tracker:
    buckets: dict[int, list[int]] = field(default_factory=dict)  # second -> [calls, failures]
    cooling_until: float = 0.0
    cooldown_reason: str | None = None
    last_error: str | None = None
    last_error_wall: float | None = None

    def add(self, second: int, failed: bool) -> None:
        bucket = self.buckets.get(second)
        if bucket is None:  # a new second: the time to drop the buckets that left the window
            for old in [s for s in self.buckets if s <= second - WINDOW_S]:
                del self.buckets[old]
            bucket = self.buckets[second] = [0, 0]
        bucket[0] += 1
        bucket[1] += int(failed)

    def counts(self, second: int) -> tuple[int, int]:
        live = [b for s, b in self.buckets.items() if s > second - WINDOW_S]
        return sum(b[0] for b in live), sum(b[1] for b in live)


class Health:
    """Records every attempt's outcome per provider and answers "is it cooling down?"."""

    def __init__(
        self,
        cooldown_s: Callable[[str], float],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        key_pools: dict[str, KeyPool] | None = None,
    ) -> None:
        self._cooldown_s = cooldown_s
        self._pools = key_pools or {}  # providers with several keys: cooling while every key is
        self._clock = clock
        self._wall = wall_clock
        self._trackers: dict[str, _Tracker] = {}
        self._shared: dict[str, tuple[float, str]] = {}  # other processes' cooldowns: provider -> (until, reason)
        # cooldowns started here, not yet shared: provider -> (wall-clock until, reason); the latest per provider
        self._started: dict[str, tuple[float, str]] = {}
        self.listeners: list[Callable[[bool], None]] = []  # called after each record; True on a failure
        self.on_cooldown: Callable[[str], None] | None = None  # called when a provider starts to cool down

    def configure(self, cooldown_s: Callable[[str], float], key_pools: dict[str, KeyPool]) -> None:
        """The settings of a reloaded config; the counts, cooldowns and listeners stay."""
        self._cooldown_s, self._pools = cooldown_s, key_pools

    def _tracker(self, provider: str) -> _Tracker:
        tracker = self._trackers.get(provider)
        if tracker is None:
            tracker = self._trackers[provider] = _Tracker()
        return tracker

    def record_success(self, provider: str) -> None:
        self._tracker(provider).add(int(self._clock()), failed=False)
        self._notify(False)

    def record_failure(self, provider: str, error: GatewayError) -> None:
        now = self._clock()
        tracker = self._tracker(provider)
        tracker.add(int(now), failed=True)
        tracker.last_error = _describe(error)
        tracker.last_error_wall = self._wall()
        calls, failures = tracker.counts(int(now))
        reason: str | None = None
        if isinstance(error, KeyRefused):
            reason = "the provider refused its API key (HTTP 401)"
        elif failures >= MIN_FAILURES and failures >= FAILURE_RATE * calls:
            reason = f"at least half of its calls failed ({failures} of {calls} in the minute before)"
        cooldown = self._cooldown_s(provider)
        if reason is not None and cooldown > 0:
            if tracker.cooling_until <= now and self.on_cooldown is not None:
                self.on_cooldown(provider)
            tracker.cooling_until = max(tracker.cooling_until, now + cooldown)
            tracker.cooldown_reason = reason
            self._started[provider] = (self._wall() + cooldown, reason)
        self._notify(True)

    def cooling_down(self, provider: str) -> bool:
        now = self._clock()
        tracker = self._trackers.get(provider)
        if tracker is not None and tracker.cooling_until > now:
            return True
        shared = self._shared.get(provider)
        if shared is not None and shared[0] > now:
            return True
        pool = self._pools.get(provider)
        return pool is not None and pool.all_cooling()

    def take_started(self) -> dict[str, tuple[float, str]]:
        """The cooldowns started here since the last call: provider -> (wall-clock until, reason)."""
        started, self._started = self._started, {}
        return started

    def adopt_shared(self, cooldowns: dict[str, tuple[float, str]]) -> None:
        """Every process's current cooldowns (provider -> wall-clock until, reason), as the store has them."""
        now, wall = self._clock(), self._wall()
        self._shared = {name: (now + until - wall, reason) for name, (until, reason) in cooldowns.items()}

    def snapshot(self, providers: Iterable[str]) -> list[ProviderHealth]:
        now, wall = self._clock(), self._wall()
        return [self._view(name, self._trackers.get(name) or _Tracker(), now, wall) for name in providers]

    def _view(self, provider: str, tracker: _Tracker, now: float, wall: float) -> ProviderHealth:
        calls, failures = tracker.counts(int(now))
        shared_until, shared_reason = self._shared.get(provider, (0.0, ""))
        # another process's cooldown that outlasts any of ours (our own come back from the store too, a few ms apart)
        if shared_until > max(tracker.cooling_until + OWN_COOLDOWN_SLACK_S, now):
            reason = f"{shared_reason} (seen by another genroute process)"
            tracker = replace(tracker, cooling_until=shared_until, cooldown_reason=reason)
        pool = self._pools.get(provider)
        if pool is not None and pool.all_cooling() and tracker.cooling_until <= now:
            until = min(key.cooling_until for key in pool.keys)
            reason = f"all {len(pool.keys)} of its keys are set aside after refusals (401, 402 or 429)"
            tracker = replace(tracker, cooling_until=until, cooldown_reason=reason)
        cooling = tracker.cooling_until > now
        state: Literal["ok", "degraded", "cooling_down"] = (
            "cooling_down" if cooling else "degraded" if failures else "ok"
        )
        recent_error = failures > 0 or cooling
        return ProviderHealth(
            provider=provider,
            state=state,
            calls_last_minute=calls,
            failures_last_minute=failures,
            failure_rate=round(failures / calls, 3) if calls else 0.0,
            cooling_down_until=_utc(wall + tracker.cooling_until - now) if cooling else None,
            cooldown_reason=tracker.cooldown_reason if cooling else None,
            last_error=tracker.last_error if recent_error else None,
            last_error_at=_utc(tracker.last_error_wall) if recent_error and tracker.last_error_wall else None,
            keys=pool.states(wall) if pool is not None else None,
        )

    def _notify(self, failed: bool) -> None:
        for listener in self.listeners:
            listener(failed)


def _describe(error: GatewayError) -> str:
    """The error's message (an upstream's names the provider, and the HTTP status if any) and its code."""
    text = error.message if isinstance(error, UpstreamError) else f"HTTP {error.status}: {error.message}"
    return f"{text} ({error.code or error.type})"[:ERROR_TEXT]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0)
