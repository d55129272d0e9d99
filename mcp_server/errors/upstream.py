"""Failures of a provider: what it answered (an HTTP error status, a garbled or cut answer) or that it did not.

Every message starts with "Provider '<name>'", so the user knows where to look. Whether a status is worth
retrying is decided here, once, for the router's retries and the video job's status polls alike.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from mcp_server.errors.base import GatewayError

# 408 Request Timeout, 409 Conflict (a lock, as the OpenAI SDK reads it), 425 Too Early (RFC 8470 §5.2: "the
# client can retry"), 429 Too Many Requests, and the server's own faults: every 5xx but 501 Not Implemented and
# 505 HTTP Version Not Supported, which say this server cannot handle such a request at all, now or later.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
NEVER_RETRYABLE_5XX = frozenset({501, 505})
# A paid submission answered with these may still have started a job upstream.
MAY_HAVE_RUN_STATUSES = frozenset({409, 500, 502, 504})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_4XX or (500 <= status <= 599 and status not in NEVER_RETRYABLE_5XX)


class UpstreamFailure(NamedTuple):
    """A provider's own account of a failure, every field already redacted (`providers/http.read_failure`)."""

    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None


_BALANCE = re.compile(r"(?i)balance|credit|insufficient|quota|billing|payment|funds")


def mentions_balance(*texts: str | None) -> bool:
    """True when an upstream's own words (message, type or code) are about money, as ArcaneAPI's 403 is."""
    return any(text and _BALANCE.search(text) for text in texts)


class UpstreamError(GatewayError):
    """The provider failed: counts against its health. `detail` follows "Provider '<name>' " in the message."""

    type = "upstream_error"
    status = 502
    provider_fault = True
    request_sent = None

    def __init__(self, provider: str, detail: str, **fields: Any) -> None:
        super().__init__(f"Provider '{provider}' {detail}", **fields)
        self.provider = provider

    @property
    def may_have_run(self) -> bool:
        if self.request_sent is not None:
            return self.request_sent
        return self.status in MAY_HAVE_RUN_STATUSES


class UpstreamHTTPError(UpstreamError):
    """The provider answered an HTTP error status. `failure` is its own account, parsed from the body; its type and
    code, when it gave them, replace the class's in the envelope. Use `http_error` to get the right subclass."""

    hint = ""  # what the user can do, added to the message

    def __init__(
        self, provider: str, status: int, failure: UpstreamFailure, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(
            provider,
            f"answered{f' HTTP {status}' if status else ''}: {failure.message}{self.hint}",
            type=failure.type,
            code=failure.code,
            param=failure.param,
            status=status,
            retry_after_s=retry_after_s,
        )
        self.failure = failure
        self.retryable = is_retryable_status(status)
        self.provider_fault = self.retryable or self.fallback  # a request it rightly refuses is not its fault


class RequestRefused(UpstreamHTTPError):
    """A 4xx about the request itself (400, 404, 422, ...): the same request is refused again (408, 409 and 425
    excepted: those are about timing)."""

    type = "invalid_request_error"


class KeyRefused(UpstreamHTTPError):
    """401: the provider refused genroute's key for it. Every call would fail the same way: the provider cools
    down at once and the fallbacks answer; never the caller's fault."""

    type = "authentication_error"
    hint = " Check the provider's API key environment variable."
    fallback = True


class PermissionRefused(UpstreamHTTPError):
    """403 about permissions (not money): the same request is refused again."""

    type = "permission_error"
    hint = " Check the key's permissions with the provider."


class InsufficientBalance(UpstreamHTTPError):
    """402, or a 403 whose words are about money (ArcaneAPI's "Insufficient balance"): another provider may
    answer."""

    type = "insufficient_quota"
    hint = " Check the account's balance with the provider."
    fallback = True


class RateLimited(UpstreamHTTPError):
    """429: wait (`retry_after_s` when the provider said how long) and try again."""

    type = "rate_limit_error"
    hint = " The provider is rate limiting: wait and try again."


def http_error(
    provider: str, status: int, failure: UpstreamFailure, *, retry_after_s: float | None = None
) -> UpstreamHTTPError:
    """The error class for an HTTP error status, and for a 402 or 403 whether it is about money."""
    cls: type[UpstreamHTTPError] = UpstreamHTTPError
    if status == 402 or (status == 403 and mentions_balance(failure.message, failure.type, failure.code)):
        cls = InsufficientBalance
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif 400 <= status < 500:
        cls = RequestRefused
    return cls(provider, status, failure, retry_after_s=retry_after_s)


_BY_STATUS: dict[int, type[UpstreamHTTPError]] = {401: KeyRefused, 403: PermissionRefused, 429: RateLimited}


class Unreachable(UpstreamError):
    """No answer: the connection failed. `request_sent` says whether the request left before it did."""

    type = "connection_error"
    code = "upstream_unreachable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    """No answer in time (`timeout_s`). `request_sent` as for `Unreachable`."""

    type = "timeout"
    code = "upstream_timeout"
    status = 504
    retryable = True


class AnswerInterrupted(UpstreamError):
    """The provider began its answer and closed the connection in the middle of the body: reached, not
    unreachable; the answer is lost."""

    code = "answer_interrupted"
    retryable = True
    request_sent = True


class AnswerCut(UpstreamError):
    """A streamed answer that ended before its end. Retryable while no text reached the client; once some did,
    `partial_text` holds it and the router does not retry (the client would see it twice)."""

    code = "stream_interrupted"
    retryable = True


class MalformedAnswer(UpstreamError):
    """An answer that is not what the protocol promises: asking again gets the same (and may pay again)."""

    code = "malformed_response"


class MediaTooLarge(UpstreamError):
    """A generated file larger than the configured download limit."""

    code = "media_too_large"
