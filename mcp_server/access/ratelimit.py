"""Per-key request rate limit: a token bucket per caller, refused with 429 and Retry-After.

The bucket holds a minute's worth of requests (so a burst up to the limit is fine) and refills at
limit/60 per second. It lives in this process: with several replicas each enforces the limit on its own.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

_MAX_BUCKETS = 10_000


class TokenBucketLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens left, when counted)

    def acquire(self, caller: str, per_minute: int) -> float:
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


class RateLimitMiddleware:
    """ASGI: after authentication, count the caller's request against its `rate_limit_per_min` claim."""

    def __init__(self, app: ASGIApp, limiter: TokenBucketLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if scope["type"] == "http" and isinstance(user, AuthenticatedUser):
            limit = (user.access_token.claims or {}).get("rate_limit_per_min")
            if isinstance(limit, int) and limit > 0:
                wait = self.limiter.acquire(user.access_token.client_id, limit)
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
