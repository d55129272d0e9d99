"""Per-key rate limit on tool calls, and a per-address limit on failed authentication; both refuse with 429.

What a key's limit counts is tool calls: tools/call, resources/read and prompts/get. Protocol traffic (initialize,
notifications, tools/list, the GET stream, DELETE) is free, so a client that opens a session per call (LangChain's
and llama-index's defaults) gets as many calls a minute as one that keeps its session. Two ways to count, one
interface:

- `TokenBucketLimiter`, in this process: a bucket per caller holds a minute's worth of requests (a burst up to
  the limit is fine) and refills at limit/60 per second. No I/O; each process enforces the limit on its own.
- `SharedWindowLimiter`, in the store: every process on the database counts into the same per-minute rows, so
  N replicas behind a load balancer allow a key its limit, not N times it. The sliding-window estimate
  (the previous minute's count weighted by how much of it is still inside the last 60 s, plus this minute's)
  smooths the edge between two minutes. It costs one small write per request; when the store cannot answer,
  this process's own bucket decides instead (a database outage must not lock every client out).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

import pydantic_core
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.access.answers import jsonrpc_error, send_json
from mcp_server.store.base import Store, StoreUnavailable

log = logging.getLogger("genroute.access")
_MAX_BUCKETS = 10_000
WINDOW_S = 60


class RateLimiter(Protocol):
    async def acquire(self, caller: str, per_minute: int) -> float:
        """Count one request by `caller`: 0.0 when allowed, else the seconds to wait before the next one."""
        ...


class TokenBucketLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_callers: int = _MAX_BUCKETS) -> None:
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens left, when counted), oldest first

    async def acquire(self, caller: str, per_minute: int) -> float:
        return self.take(caller, per_minute)

    def peek(self, caller: str, per_minute: int) -> float:
        """What `take` would answer, without taking anything."""
        return _wait(self._tokens(caller, per_minute, self._clock()), per_minute)

    def take(self, caller: str, per_minute: int) -> float:
        """Take one request from `caller`'s bucket: 0.0 when allowed, else the seconds until one is free."""
        now = self._clock()
        tokens = self._tokens(caller, per_minute, now)
        self._buckets.pop(caller, None)  # re-inserted last: the dict stays ordered by last use
        self._buckets[caller] = (tokens - 1.0 if tokens >= 1.0 else tokens, now)
        self._prune()
        return _wait(tokens, per_minute)

    def _tokens(self, caller: str, per_minute: int, now: float) -> float:
        tokens, then = self._buckets.get(caller, (float(per_minute), now))
        return min(float(per_minute), tokens + (now - then) * per_minute / 60.0)

    def _prune(self) -> None:
        """Past `max_callers` (addresses are cheap to come by), forget the least recently seen caller: one idle
        for a minute has a full bucket again anyway."""
        while len(self._buckets) > self._max_callers:
            del self._buckets[next(iter(self._buckets))]


def _wait(tokens: float, per_minute: int) -> float:
    """0.0 with a whole request in the bucket, else the seconds until there is one."""
    return 0.0 if tokens >= 1.0 else (1.0 - tokens) * 60.0 / per_minute


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


COUNTED_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})


class RateLimitMiddleware:
    """ASGI: after authentication, count the caller's tool calls against its `rate_limit_per_min` claim.

    The JSON-RPC method is in the body, so a limited key's POST is read here first (up to `max_body_bytes`; a
    bigger one goes on uncounted to the SDK, which refuses it with 413) and handed on unchanged."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, max_body_bytes: int) -> None:
        self.app = app
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if scope["type"] == "http" and scope["method"] == "POST" and isinstance(user, AuthenticatedUser):
            limit = (user.access_token.claims or {}).get("rate_limit_per_min")
            if isinstance(limit, int) and limit > 0:
                body, receive = await _read_body(receive, self.max_body_bytes)
                for call in _counted_calls(body):
                    wait = await self.limiter.acquire(user.access_token.client_id, limit)
                    if wait > 0:
                        await _too_many(send, math.ceil(wait), limit, call.get("id"))
                        return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The request body (None when over `limit` or cut short) and a `receive` that hands the same messages on."""
    chunks: list[bytes] = []
    size = 0
    more = True
    pending: list[Message] = []
    while more and size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            pending.append(message)  # a disconnect, passed on after what came before it
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    body = b"".join(chunks)
    pending.insert(0, {"type": "http.request", "body": body, "more_body": more})
    complete = not more and size <= limit

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return (body if complete else None), replay


def _counted_calls(body: bytes | None) -> list[dict[str, Any]]:
    """The tool calls in a JSON-RPC body (a batch, should a client send one, counts each). Parsed as the SDK parses
    it: what it would run is what is counted."""
    if not body:
        return []
    try:
        message = pydantic_core.from_json(body)
    except ValueError:
        return []  # the SDK answers a parse error; nothing runs
    messages = message if isinstance(message, list) else [message]
    return [m for m in messages if isinstance(m, dict) and m.get("method") in COUNTED_METHODS]


async def _too_many(send: Send, retry_after: int, limit: int, request_id: Any) -> None:
    message = (
        f"Rate limited: this key may make {limit} tool calls a minute (tools/call, resources/read, prompts/get). "
        f"Retry after {retry_after} s."
    )
    payload = jsonrpc_error(request_id, message, {"error": "rate_limited", "retry_after_s": retry_after})
    await send_json(send, 429, payload, {"retry-after": str(retry_after)})


# ----- failed authentication, per client address ---------------------------------------------------------------

# The address of the request being authenticated, for the verifiers (set by auth.py's backend)
request_address: ContextVar[str | None] = ContextVar("genroute_request_address", default=None)


def address_of(scope: Scope) -> str:
    """Who a failure is counted against: the client's address (uvicorn has applied X-Forwarded-For from trusted
    proxies), an IPv6 client's whole /64 (one host may hold all of it)."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AuthFailureLimiter:
    """At most `per_minute` failed authentications per address (a token bucket each, the same arithmetic as a
    key's limit); over it the address gets 429 instead of 401, and OAuth introspection is not asked on its behalf.
    Never consulted for a request that authenticated."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._buckets = TokenBucketLimiter(clock)

    def blocked(self, address: str) -> float:
        """Seconds until `address` may fail again (0.0: not blocked); counts nothing."""
        return self._buckets.peek(address, self.per_minute)

    def failed(self, address: str) -> float:
        """Count one failure: 0.0 while within the limit, else the seconds to wait."""
        return self._buckets.take(address, self.per_minute)


async def too_many_failures(send: Send, retry_after: int, per_minute: int) -> None:
    description = (
        f"Too many failed authentications from this address ({per_minute} a minute). Check the key or token "
        f"and retry after {retry_after} s."
    )
    payload = {"error": "too_many_failures", "error_description": description, "retry_after_s": retry_after}
    await send_json(send, 429, payload, {"retry-after": str(retry_after)})
