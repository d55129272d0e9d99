"""One error type for everything a client can be told went wrong.

Every layer (config, router, adapters, media, store) raises `GatewayError`; the MCP surface turns it
into an isError result with the OpenAI-style envelope. Anything else is a bug and reaches the client
only as a generic message, never as raw exception text.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """The `{"error": {...}}` envelope, as the OpenAI-compatible upstreams shape it."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None
    status: int | None = None


class GatewayError(Exception):
    """A failure with a message a person (or an agent) can act on."""

    def __init__(
        self,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        partial_text: str | None = None,
        billed: bool = False,
        request_sent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.status = status
        self.retry_after_s = retry_after_s
        self.partial_text = partial_text
        self.billed = billed
        # Transport failures only: False when the request never left (safe to send again), True when it was
        # sent and the answer was lost (a paid submission may exist upstream). None: an HTTP answer came back.
        self.request_sent = request_sent
        self.attempts: list[dict[str, Any]] = []  # set by the router: every upstream attempt of this call

    def copy_with(self, message: str) -> GatewayError:
        """The same error with another message (the router adds what it tried)."""
        copy = GatewayError(
            message,
            type=self.type,
            code=self.code,
            param=self.param,
            status=self.status,
            retry_after_s=self.retry_after_s,
            partial_text=self.partial_text,
            billed=self.billed,
            request_sent=self.request_sent,
        )
        copy.attempts = list(self.attempts)
        return copy

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


def invalid_argument(param: str, message: str, code: str = "invalid_argument") -> GatewayError:
    """Bad input from the caller: names the argument and says what is allowed."""
    return GatewayError(message, type="invalid_request_error", code=code, param=param, status=400)


def upstream_error(
    provider: str,
    status: int | None,
    message: str,
    *,
    type: str = "upstream_error",
    code: str | None = None,
    param: str | None = None,
    retry_after_s: float | None = None,
) -> GatewayError:
    """A provider refused or failed; the message says which provider so the user knows where to look."""
    return GatewayError(
        f"Provider '{provider}' answered{f' HTTP {status}' if status else ''}: {message}",
        type=type,
        code=code,
        param=param,
        status=status,
        retry_after_s=retry_after_s,
    )


class ConfigError(Exception):
    """The config file is wrong: says which file, which key and what is wrong."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path = path
        self.key = key
        self.problem = problem
