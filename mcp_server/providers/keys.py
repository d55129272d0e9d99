"""Several API keys for one provider (`api_key_env = ["KEY_A", "KEY_B"]`): which one each request uses.

Each request takes the key with the fewest requests in flight among those not cooling down (ties: the one that
has served least). A key the provider answered 401, 402 or 429 cools down on its own (reliability/attempts.py
decides that, as it decides everything about failures) while the others carry on; when every key is cooling the
provider is, as a provider with one key would be (reliability/health.py asks `all_cooling`).

Which key served a request is known by its variable's name only, never its value: the ledger records it and
status://providers shows each key's state. The name is passed back through `SERVED_KEY`, a context variable the
request sets in the calling task, so the adapters' signatures stay as they are.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx2
from pydantic import BaseModel

# The variable name of the key the last request in this task was sent with (None: no key, or not yet).
SERVED_KEY: ContextVar[str | None] = ContextVar("genroute_served_key", default=None)


class KeyState(BaseModel):
    """One key as status://providers shows it: its variable's name, never its value."""

    env: str
    state: Literal["ok", "cooling_down"]
    in_flight: int
    served: int
    cooling_down_until: datetime | None = None
    cooldown_reason: str | None = None


@dataclass
class ProviderKey:
    env: str
    value: str
    in_flight: int = 0
    served: int = 0
    cooling_until: float = 0.0  # monotonic
    reason: str | None = None


class KeyPool:
    """A provider's keys, as the environment gives them (unset variables left out)."""

    def __init__(self, keys: list[tuple[str, str]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = [ProviderKey(env, value) for env, value in keys]
        self._clock = clock

    def __bool__(self) -> bool:
        return bool(self.keys)

    @property
    def several(self) -> bool:
        return len(self.keys) > 1

    def pick(self) -> ProviderKey:
        """The ready key with the fewest requests in flight; when every key cools, the one that is ready first."""
        now = self._clock()
        ready = [key for key in self.keys if key.cooling_until <= now]
        if not ready:
            return min(self.keys, key=lambda key: key.cooling_until)
        return min(ready, key=lambda key: (key.in_flight, key.served))

    @contextmanager
    def lease(self) -> Iterator[ProviderKey]:
        """One request's key: counted in flight until the request ends, and named in SERVED_KEY."""
        key = self.pick()
        key.in_flight += 1
        key.served += 1
        SERVED_KEY.set(key.env)
        try:
            yield key
        finally:
            key.in_flight -= 1

    def cool(self, env: str | None, seconds: float, reason: str) -> bool:
        """Set the key named `env` aside for `seconds`; True when another key is ready to carry on."""
        now = self._clock()
        for key in self.keys:
            if key.env == env and seconds > 0:
                key.cooling_until = max(key.cooling_until, now + seconds)
                key.reason = reason
        return any(key.cooling_until <= now for key in self.keys)

    def all_cooling(self) -> bool:
        now = self._clock()
        return bool(self.keys) and all(key.cooling_until > now for key in self.keys)

    def states(self, wall: float | None = None) -> list[KeyState]:
        now, wall = self._clock(), time.time() if wall is None else wall
        return [
            KeyState(
                env=key.env,
                state="cooling_down" if key.cooling_until > now else "ok",
                in_flight=key.in_flight,
                served=key.served,
                cooling_down_until=(
                    datetime.fromtimestamp(wall + key.cooling_until - now, UTC).replace(microsecond=0)
                    if key.cooling_until > now
                    else None
                ),
                cooldown_reason=key.reason if key.cooling_until > now else None,
            )
            for key in self.keys
        ]


class BearerFromPool(httpx2.Auth):
    """httpx2 auth that sends each request with a key from the pool (`Authorization: Bearer ...`)."""

    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if "authorization" in request.headers:  # set on purpose (`genroute check`'s wrong-key probe): kept
            yield request
            return
        with self.pool.lease() as key:
            request.headers["Authorization"] = f"Bearer {key.value}"
            yield request  # the lease ends when the answer's head is in (or the request failed)
