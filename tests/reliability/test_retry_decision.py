"""The one answer to "is this worth retrying?": each failure's class says it, and the router's verdict, the video
job's status polls and the provider's health all read that answer. A table of what providers answer (built the
way the adapters build them) and of genroute's own failures, against what happens next."""

from __future__ import annotations

import pytest

from mcp_server.errors import (
    AnswerCut,
    AnswerInterrupted,
    BudgetRefused,
    DeadlineExceeded,
    GatewayError,
    InvalidArgument,
    LocalModelUnavailable,
    MalformedAnswer,
    PriceUnknown,
    ServerFault,
    SubmissionOutcomeUnknown,
    Unreachable,
    Unsupported,
    UpstreamFailure,
    UpstreamTimeout,
    http_error,
)
from mcp_server.reliability.retry import Verdict, classify

RETRY, FALLBACK, FAIL = Verdict.RETRY, Verdict.FALLBACK, Verdict.FAIL
BALANCE = UpstreamFailure("Insufficient balance", "permission_error")
DENIED = UpstreamFailure("Not allowed for this key", "permission_error")

STATUSES = [
    (400, FAIL),
    (401, FALLBACK),  # genroute's key for that provider: another provider may answer
    (402, FALLBACK),
    (404, FAIL),
    (408, RETRY),
    (409, RETRY),
    (422, FAIL),
    (425, RETRY),  # Too Early: RFC 8470 says the client may send it again
    (429, RETRY),
    (500, RETRY),
    (501, FAIL),  # Not Implemented: this server cannot do it, now or later
    (502, RETRY),
    (503, RETRY),
    (504, RETRY),
    (505, FAIL),  # HTTP Version Not Supported: likewise
    (507, RETRY),
    (520, RETRY),  # Cloudflare's "the origin answered nothing usable", in front of many gateways
    (529, RETRY),
]


@pytest.mark.parametrize(("status", "verdict"), STATUSES)
def test_an_http_error_status_decides_the_verdict(status: int, verdict: Verdict) -> None:
    error = http_error("p", status, UpstreamFailure("no"))
    assert classify(error) is verdict
    assert error.retryable is (verdict is RETRY)  # what a video job's status poll reads
    assert error.provider_fault is (verdict is not FAIL)  # a request rightly refused does not cool a provider


def test_a_403_goes_to_the_fallbacks_only_when_it_is_about_money() -> None:
    assert classify(http_error("p", 403, BALANCE)) is FALLBACK
    assert classify(http_error("p", 403, DENIED)) is FAIL


OWN_AND_TRANSPORT: list[tuple[GatewayError, Verdict, bool]] = [  # the error, the verdict, counts against provider
    (Unreachable("p", "is unreachable", request_sent=False), RETRY, True),
    (UpstreamTimeout("p", "did not answer in time", request_sent=True), RETRY, True),
    (AnswerInterrupted("p", "closed the connection"), RETRY, True),
    (AnswerCut("p", "cut the stream", partial_text=""), RETRY, True),  # nothing reached the client yet
    (AnswerCut("p", "cut the stream", partial_text="Once upon"), FAIL, True),  # the client would see it twice
    (MalformedAnswer("p", "sent a malformed answer"), FAIL, True),
    (LocalModelUnavailable("not installed"), FALLBACK, True),
    (BudgetRefused("over budget"), FALLBACK, False),  # genroute's own refusal: the provider is not blamed
    (PriceUnknown("no price"), FALLBACK, False),
    (InvalidArgument("model", "bad"), FAIL, False),
    (Unsupported("no usage reports"), FAIL, False),
    (ServerFault("provider not configured"), FAIL, False),
]


@pytest.mark.parametrize(("error", "verdict", "fault"), OWN_AND_TRANSPORT, ids=lambda v: type(v).__name__)
def test_each_failure_class_decides_the_verdict(error: GatewayError, verdict: Verdict, fault: bool) -> None:
    assert classify(error) is verdict
    assert error.provider_fault is fault


def test_the_answers_the_router_stops_on_are_still_worth_a_later_poll() -> None:
    """The deadline ends one call, not a job: a status poll that hit it is tried again at the next poll."""
    assert DeadlineExceeded("too slow").retryable
    assert not SubmissionOutcomeUnknown("lost").retryable  # sending it again could pay twice


@pytest.mark.parametrize(
    ("error", "may_have_run"),
    [
        (http_error("p", 409, UpstreamFailure("conflict")), True),
        (http_error("p", 500, UpstreamFailure("oops")), True),
        (http_error("p", 503, UpstreamFailure("busy")), False),  # refused before anything started
        (http_error("p", 429, UpstreamFailure("slow down")), False),
        (http_error("p", 501, UpstreamFailure("no")), False),
        (Unreachable("p", "is unreachable", request_sent=False), False),
        (UpstreamTimeout("p", "did not answer in time", request_sent=True), True),
        (MalformedAnswer("p", "sent a malformed answer"), True),  # an answer came, garbled: a job may exist
        (SubmissionOutcomeUnknown("lost"), True),
        (BudgetRefused("over budget"), False),
        (ServerFault("input lost"), False),
    ],
    ids=repr,
)
def test_whether_a_paid_submission_may_have_started(error: GatewayError, may_have_run: bool) -> None:
    assert error.may_have_run is may_have_run


def test_context_is_added_to_a_copy_of_the_same_class() -> None:
    caught = http_error("p", 429, UpstreamFailure("slow down"), retry_after_s=3)
    told = caught.with_context(message="slow down [3 attempts]", attempts=[{"model": "m"}], partial_text="Hi")
    assert type(told) is type(caught) and told.retryable and told.retry_after_s == 3 and told.status == 429
    assert (told.message, str(told), told.attempts, told.partial_text) == (
        "slow down [3 attempts]",
        "slow down [3 attempts]",
        [{"model": "m"}],
        "Hi",
    )
    assert caught.message.startswith("Provider 'p' answered HTTP 429") and not caught.attempts
    assert caught.partial_text is None
