"""Per-key request rate limit, refused with 429 and Retry-After. Two ways to count, one interface:

- `TokenBucketLimiter`, in this process: a bucket per caller holds a minute's worth of requests (a burst up to
  the limit is fine) and refills at limit/60 per second. No I/O; each process enforces the limit on its own.
- `SharedWindowLimiter`, in the store: every process on the database counts into the same per-minute rows, so
  N replicas behind a load balancer allow a key its limit, not N times it. The sliding-window estimate
  (the previous minute's count weighted by how much of it is still inside the last 60 s, plus this minute's)
  smooths the edge between two minutes. It costs one small write per request; when the store cannot answer,
  this process's own bucket decides instead (a database outage must not lock every client out).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.store.base import Store, StoreUnavailable

log = logging.getLogger("genroute.access")
_MAX_BUCKETS = 10_000
WINDOW_S = 60


class RateLimiter(Protocol):
    async def acquire(self, caller: str, per_minute: int) -> float:
        """Count one request by `caller`: 0.0 when allowed, else the seconds to wait before the next one."""
        ...


class TokenBucketLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens left, when counted)

    async def acquire(self, caller: str, per_minute: int) -> float:
        return self.take(caller, per_minute)

    def take(self, caller: str, per_minute: int) -> float:
        """Take one request from `caller`'s bucket: 0.0 when allowed, else the seconds until one is free."""
        now = self._clock()
        rate = per_minute / 60.0
        tokens, then = self._buckets.get(caller, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - then) * rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            self._prune(now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) / rate

    def _prune(self, now: float) -> None:
        """Forget callers idle for over a minute (their buckets are full again anyway)."""
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60.0}


class SharedWindowLimiter:
    """Counts in the store, for every process on it. Refused requests count too: a client that keeps sending
    while refused stays refused, one that waits Retry-After gets through."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._fallback = TokenBucketLimiter()
        self._store_down = False

    async def acquire(self, caller: str, per_minute: int) -> float:
        now = self._clock()
        window_start = int(now // WINDOW_S) * WINDOW_S
        try:
            current, previous = await self._store.count_request(caller, window_start)
        except StoreUnavailable as exc:
            if not self._store_down:
                log.warning("rate limits counted in this process only while the store is unavailable: %s", exc)
            self._store_down = True
            return self._fallback.take(caller, per_minute)
        self._store_down = False
        return retry_after(current, previous, now - window_start, per_minute)


def retry_after(current: int, previous: int, elapsed: float, limit: int) -> float:
    """0.0 when `current` requests this minute (`elapsed` s into it) and `previous` in the minute before fit the
    sliding-window estimate of `limit` a minute; else the seconds until one more would, with no more sent."""
    still_in = previous * (1.0 - elapsed / WINDOW_S)
    if still_in + current <= limit:
        return 0.0
    if current < limit and previous > 0:  # later in this minute, once enough of the previous one has slid out
        return WINDOW_S * (1.0 - (limit - current - 1) / previous) - elapsed
    # the next minute, once enough of this one has slid out
    return (WINDOW_S - elapsed) + max(0.0, WINDOW_S * (1.0 - (limit - 1) / current))


class RateLimitMiddleware:
    """ASGI: after authentication, count the caller's request against its `rate_limit_per_min` claim."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if scope["type"] == "http" and isinstance(user, AuthenticatedUser):
            limit = (user.access_token.claims or {}).get("rate_limit_per_min")
            if isinstance(limit, int) and limit > 0:
                wait = await self.limiter.acquire(user.access_token.client_id, limit)
                if wait > 0:
                    await _too_many(send, math.ceil(wait), limit)
                    return
        await self.app(scope, receive, send)


async def _too_many(send: Send, retry_after: int, limit: int) -> None:
    body = json.dumps(
        {
            "error": "rate_limited",
            "error_description": f"This key may send {limit} requests a minute. Retry after {retry_after} s.",
            "retry_after_s": retry_after,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
