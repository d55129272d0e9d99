"""Which failures are retried, which go to fallbacks, which stop, and how long to wait.

The rules are the OpenAI Python SDK's (2 retries; 408, 409, 429, 5xx and transport failures; delay
min(0.5 * 2^n, 8) s minus up to 25% jitter; Retry-After honoured up to a cap) plus LiteLLM's router
(402 and a balance 403 move on to the model's fallbacks). Each error class says whether it is worth retrying
(`retryable`, decided for HTTP statuses in errors/upstream.py) and whether a fallback may serve instead
(`fallback`); this module turns that into a verdict. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from mcp_server.config import ProviderConfig, RoutingConfig
from mcp_server.errors import GatewayError

JITTER = 0.25


class Verdict(StrEnum):
    RETRY = "retry"  # the same model again after a wait, then its fallbacks
    FALLBACK = "fallback"  # no retry, but the next fallback may answer
    FAIL = "fail"  # stop: the request itself is refused, or the client already holds part of the answer


def classify(error: GatewayError) -> Verdict:
    if error.partial_text:  # text already went to the client: a retry would repeat or contradict it
        return Verdict.FAIL
    if error.retryable:
        return Verdict.RETRY
    if error.fallback:
        return Verdict.FALLBACK
    return Verdict.FAIL  # 400, other 403s, 404, 422, a garbled answer: the same request fails again


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_cap_s: float = 60.0

    @classmethod
    def for_provider(cls, routing: RoutingConfig, provider: ProviderConfig | None) -> RetryPolicy:
        override = provider.max_retries if provider is not None else None
        return cls(
            max_retries=routing.max_retries if override is None else override,
            backoff_base_s=routing.backoff_base_s,
            backoff_max_s=routing.backoff_max_s,
            retry_after_cap_s=routing.retry_after_cap_s,
        )

    def backoff_s(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Wait before retry number `retry` (0 for the first): base * 2^n capped, shortened by up to 25%."""
        delay = min(self.backoff_base_s * 2.0**retry, self.backoff_max_s)
        return delay * (1.0 - JITTER * rand())

    def wait_s(self, error: GatewayError, retry: int) -> float:
        """The provider's Retry-After when it gave a usable one, else the backoff."""
        asked = error.retry_after_s
        if asked is not None and 0 < asked <= self.retry_after_cap_s:
            return asked
        return self.backoff_s(retry)

    def asks_too_long(self, error: GatewayError) -> bool:
        """The provider asked to wait longer than the cap: fail at once rather than hang the caller."""
        return error.retry_after_s is not None and error.retry_after_s > self.retry_after_cap_s
