"""Which upstream failures are retried, which go to fallbacks, which stop, and how long to wait.

The rules are the OpenAI Python SDK's (2 retries; 408, 409, 429, >= 500 and transport failures; delay
min(0.5 * 2^n, 8) s minus up to 25% jitter; Retry-After honoured up to a cap) plus LiteLLM's router
(402 and a balance 403 move on to the model's fallbacks). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from mcp_server.config import ProviderConfig, RoutingConfig
from mcp_server.errors import GatewayError
from mcp_server.providers.http import mentions_balance

# Transport failures arrive as 502 (upstream_unreachable) or 504 (upstream_timeout); 529 is "overloaded".
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# The provider cannot serve this call but another one may: no retry, straight to the fallbacks.
# 401 is the gateway's own key for that provider, never the caller's fault, so a fallback is the fix too.
FALLBACK_STATUSES = frozenset({401, 402})
# Failures that no retry changes: a garbled answer, genroute's own setup, the embedded model.
NOT_RETRIED_CODES = frozenset(
    {"malformed_response", "provider_not_configured", "local_model_unavailable", "local_model_error"}
)
# A paid submission answered with these may still have started a job upstream.
MAY_HAVE_RUN_STATUSES = frozenset({409, 500, 502, 504})
JITTER = 0.25


class Verdict(StrEnum):
    RETRY = "retry"  # the same model again after a wait, then its fallbacks
    FALLBACK = "fallback"  # no retry, but the next fallback may answer
    FAIL = "fail"  # stop: the request itself is refused, or the client already holds part of the answer


def is_balance_refusal(error: GatewayError) -> bool:
    """A 403 that is about money (ArcaneAPI's "Insufficient balance"), not about permissions."""
    upstream_words = error.message.partition(": ")[2]  # past "Provider 'x' answered HTTP 403"
    return error.status == 403 and mentions_balance(error.code, error.type, upstream_words)


def classify(error: GatewayError) -> Verdict:
    if error.partial_text:  # text already went to the client: a retry would repeat or contradict it
        return Verdict.FAIL
    if error.code in NOT_RETRIED_CODES:
        return Verdict.FALLBACK if error.code.startswith("local_model") else Verdict.FAIL
    if error.status in RETRYABLE_STATUSES:
        return Verdict.RETRY
    if error.status in FALLBACK_STATUSES or is_balance_refusal(error):
        return Verdict.FALLBACK
    return Verdict.FAIL  # 400, other 403s, 404, 422 and anything unknown: the same request fails again


# genroute's own budget refusing a fallback (usage/allowance.py): on to the next one, the provider not blamed.
OWN_REFUSALS = frozenset({"budget_exceeded", "price_unknown"})


def is_provider_fault(error: GatewayError) -> bool:
    """Counts against the provider's health: it failed, not the caller's request."""
    if error.code in OWN_REFUSALS:
        return False
    return classify(error) is not Verdict.FAIL or error.code in ("malformed_response", "stream_interrupted")


def may_have_run(error: GatewayError) -> bool:
    """True when the upstream may have acted on the request although no answer came back."""
    if error.request_sent is not None:
        return error.request_sent
    return error.status in MAY_HAVE_RUN_STATUSES


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
