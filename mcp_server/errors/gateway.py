"""Failures genroute decides itself: the caller's request refused, the budget, the deadline, its own faults."""

from __future__ import annotations

from typing import Any

from mcp_server.errors.base import GatewayError


class InvalidArgument(GatewayError):
    """Bad input from the caller: the message names the argument and says what is allowed."""

    code = "invalid_argument"
    status = 400

    def __init__(self, param: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, param=param)


def invalid_argument(param: str, message: str, code: str = "invalid_argument") -> InvalidArgument:
    return InvalidArgument(param, message, code=code)


class NotFound(GatewayError):
    """What the caller named does not exist (a model, a media file, a key)."""

    code = "not_found"
    status = 404


class Forbidden(GatewayError):
    """The caller's key may not do this."""

    type = "permission_error"
    code = "forbidden"
    status = 403


class MissingApiKey(GatewayError):
    """The provider's key variable is unset where genroute runs: nothing was sent, and its fallbacks may answer."""

    type = "authentication_error"
    code = "missing_api_key"
    status = 401
    fallback = True
    request_sent = False


class Conflict(GatewayError):
    """The request clashes with what exists (a key name already taken)."""

    status = 409


class TooLarge(GatewayError):
    """An answer would exceed a configured size limit; the message says where to get it instead."""

    code = "too_large"
    status = 413


class Unsupported(GatewayError):
    """The provider's adapter has no such operation (a usage report from a provider that keeps none)."""

    code = "unsupported_operation"
    status = 400


class BudgetRefused(GatewayError):
    """genroute's own budget refused the call; on the way to a fallback it is refused there, never sent, so the
    next fallback (perhaps cheaper) is tried and the provider is not blamed."""

    type = "insufficient_quota"
    code: str = "budget_exceeded"  # also the ledger's status for the refused call
    status = 402
    fallback = True


class PriceUnknown(BudgetRefused):
    """A budget applies but the model has no price, so its cost cannot be kept within it."""

    code = "price_unknown"


class TimedOut(GatewayError):
    """Something took longer than its configured limit."""

    type = "timeout"
    code = "timeout"
    status = 504
    retryable = True


class DeadlineExceeded(TimedOut):
    """The caller's time budget for one logical call (`deadline_s`) ran out: the router stops there."""

    code = "deadline_exceeded"


class SubmissionOutcomeUnknown(GatewayError):
    """A paid submission was sent and its answer lost: the job may exist (and be billed) upstream, so it is not
    sent again."""

    type = "upstream_error"
    code = "submission_outcome_unknown"
    status = 502
    request_sent = True


class ServerFault(GatewayError):
    """genroute itself cannot serve the call (its setup, its store, a bug): no retry or fallback changes that."""

    type = "server_error"
    code = "internal_error"
    status = 500


class LocalModelFailed(ServerFault):
    """The embedded model failed to answer: another model (a fallback) may."""

    code = "local_model_error"
    fallback = True
    provider_fault = True


class LocalModelUnavailable(LocalModelFailed):
    """The embedded model is not installed."""

    code = "local_model_unavailable"
    status = 503


class InvalidJsonAnswer(GatewayError):
    """The model was asked for JSON (`response_format`) and its answer is not valid JSON or does not match the
    schema. Not retried: the same question tends to get the same answer, and each try is paid. `raw_text` is the
    answer as it came, for the caller to repair or ask again."""

    type = "upstream_error"
    code = "invalid_json_answer"
    status = 502

    def __init__(self, message: str, raw_text: str) -> None:
        super().__init__(message, param="response_format")
        self.raw_text = raw_text

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["raw_text"] = self.raw_text
        return data
