"""The root of every failure a client can be told about, and the config file's own error."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """The `{"error": {...}}` envelope, as the OpenAI-compatible upstreams shape it."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None
    status: int | None = None


class GatewayError(Exception):
    """A failure with a message a person (or an agent) can act on.

    Each subclass names one kind of failure: its envelope defaults (`type`, `code`, `status`) and what the router
    does about it are class attributes, so a raising site says only what is particular to it, and decisions test
    the class, never the message.
    """

    type: str = "invalid_request_error"
    code: str | None = None
    status: int | None = None
    # The one answer to "is this worth sending again?": the router's retries and video status polls both read it.
    retryable: bool = False
    # This route cannot answer but another model may: no retry, straight on to the fallbacks.
    fallback: bool = False
    # Counts against the provider's health (and its cooldown): it failed, not the caller's request.
    provider_fault: bool = False
    # Whether the request left for the upstream: False (genroute's own refusal, or a connection never opened),
    # True (sent, and the answer lost), None (an HTTP answer came back: its status tells, see `may_have_run`).
    request_sent: bool | None = False
    billed: bool = False  # the upstream charged for the failed call (the ledger then records the estimate)

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        partial_text: str | None = None,
        request_sent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if request_sent is not None:
            self.request_sent = request_sent
        self.param = param
        self.retry_after_s = retry_after_s
        self.partial_text = partial_text  # the text a client already received when a streamed answer broke
        self.attempts: list[dict[str, Any]] = []  # set by the router: every upstream attempt of this call

    @property
    def may_have_run(self) -> bool:
        """The upstream may have acted on the request although no answer came back (a paid job may exist)."""
        return bool(self.request_sent)

    def with_context(
        self,
        *,
        message: str | None = None,
        attempts: list[dict[str, Any]] | None = None,
        partial_text: str | None = None,
    ) -> Self:
        """A copy of this error, of the same class, with what a caller adds (the router: what it tried; a stream:
        the text already sent). The error caught stays as it was: other code may hold it."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.args = (message or self.message,)
        clone.message = message or self.message
        clone.attempts = list(self.attempts if attempts is None else attempts)
        if partial_text is not None:
            clone.partial_text = partial_text
        return clone

    def body(self) -> ErrorBody:
        return ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code, status=self.status)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"error": self.body().model_dump()}
        if self.retry_after_s is not None:
            data["error"]["retry_after_s"] = self.retry_after_s
        if self.attempts:
            data["error"]["attempts"] = self.attempts
        if self.partial_text is not None:
            data["partial_text"] = self.partial_text
        return data


class ConfigError(Exception):
    """The config file is wrong: says which file, which key and what is wrong."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path = path
        self.key = key
        self.problem = problem
