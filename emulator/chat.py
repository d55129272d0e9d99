"""Pure text-side shapes of the provider emulator: chat, AKI.IO, ARKA usage and error bodies.

Kept free of server state so the wire formats can be read (and checked) in one place; `emulator.py`
owns the state and the sockets. Token counts are whitespace-split word counts everywhere: real
tokenizers differ per provider, and tests only need figures they can predict.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

_WORD = re.compile(r"\S+\s*")

# status -> (type, code, default message), the way OpenAI-compatible upstreams label them.
STATUS_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request", "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Invalid API key provided"),
    402: ("insufficient_quota", "insufficient_credits", "Insufficient credits."),
    403: ("permission_error", "insufficient_balance", "Insufficient balance."),
    404: ("invalid_request_error", "not_found", "Not found."),
    408: ("timeout_error", "timeout", "Request timed out."),
    409: ("invalid_request_error", "conflict", "Conflict."),
    422: ("invalid_request_error", "invalid_parameters", "Invalid parameters."),
    429: ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached, retry later."),
    500: ("server_error", "internal_error", "The server had an error while processing your request."),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded."),
    504: ("server_error", "gateway_timeout", "Gateway timeout."),
}


class Invalid(Exception):
    """A request the emulated upstream refuses; the dispatcher renders it in that API's error shape."""

    def __init__(
        self,
        param: str | None,
        message: str,
        *,
        status: int = 400,
        code: str | None = "invalid_value",
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status
        self.code = code
        self.type = type


def envelope(
    status: int,
    message: str | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
    type: str | None = None,
) -> dict[str, Any]:
    """The OpenAI-style `{"error": {...}}` body, with the type/code a real upstream uses for `status`."""
    d_type, d_code, d_message = STATUS_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", f"http_{status}", f"HTTP {status}.")
    )
    return {"error": {"message": message or d_message, "type": type or d_type, "param": param, "code": code or d_code}}


def aki_error(message: str) -> dict[str, Any]:
    """AKI.IO's native failure body (it has no envelope, just a flag and a string)."""
    return {"success": False, "error": message}


def words(text: str) -> int:
    """Token count stand-in: whitespace-separated words."""
    return len(text.split())


def pieces(text: str) -> list[str]:
    """One stream delta per word, trailing whitespace kept, so `"".join(pieces(t)) == t`."""
    out = _WORD.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead:
        out = [lead + out[0], *out[1:]] if out else [lead]
    return out


def truncate(text: str, limit: int | None) -> tuple[str, bool]:
    """The first `limit` words of `text` (trailing space dropped) and whether anything was cut."""
    if limit is None or words(text) <= limit:
        return text, False
    return "".join(pieces(text)[:limit]).rstrip(), True


def _content_text(content: Any, where: str) -> str:
    """Text of a message `content`: a string, null, or a list of OpenAI content parts (text parts count)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise Invalid(where, f"Invalid content part in '{where}': expected an object with a 'type'.")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise Invalid(where, f"Content part of type 'text' in '{where}' needs a string 'text'.")
                texts.append(part["text"])
        return " ".join(texts)
    raise Invalid(where, f"Invalid type for '{where}': expected a string or an array of content parts.")


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(name, f"Invalid '{name}': expected an integer >= 1, got {json.dumps(value)}.")
    return value


def require_object(body: Any) -> dict[str, Any]:
    """Refuse a body that is missing, not JSON or not an object, as OpenAI does."""
    if not isinstance(body, dict):
        raise Invalid(None, "We could not parse the JSON body of your request: expected a JSON object.")
    return body


def require_str(body: dict[str, Any], name: str) -> str:
    """A required non-empty string field; the 400 names the field."""
    value = body.get(name)
    if value is None:
        raise Invalid(name, f"Missing required parameter: '{name}'.", code="missing_required_parameter")
    if not isinstance(value, str) or not value.strip():
        raise Invalid(name, f"Invalid '{name}': expected a non-empty string.")
    return value


@dataclass
class ChatCall:
    """A validated chat request, reduced to what the emulator's answer depends on."""

    model: str
    prompt_words: int
    last_user: str
    stream: bool
    include_usage: bool
    max_tokens: int | None


def parse_chat(body: Any) -> ChatCall:
    """Validate a /chat/completions body the way an OpenAI-compatible upstream would (400 naming `param`)."""
    body = require_object(body)
    model = require_str(body, "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages", "Invalid 'messages': expected a non-empty array of {role, content} objects.")
    total = 0
    last_user = ""
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not msg["role"]:
            raise Invalid(f"messages[{i}]", f"Invalid 'messages[{i}]': expected an object with a string 'role'.")
        if "content" not in msg:
            raise Invalid(f"messages[{i}].content", f"Missing required parameter: 'messages[{i}].content'.")
        content = _content_text(msg["content"], f"messages[{i}].content")
        total += words(content)
        if msg["role"] == "user":
            last_user = content
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise Invalid("stream", "Invalid 'stream': expected a boolean.")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise Invalid("stream_options", "Invalid 'stream_options': expected an object.")
    max_tokens = _positive_int(body, "max_tokens")
    if max_tokens is None:
        max_tokens = _positive_int(body, "max_completion_tokens")
    return ChatCall(model, total, last_user, bool(stream), options.get("include_usage") is True, max_tokens)


def usage(prompt_words: int, answer: str) -> dict[str, int]:
    completion = words(answer)
    return {"prompt_tokens": prompt_words, "completion_tokens": completion, "total_tokens": prompt_words + completion}


def completion(cid: str, created: int, model: str, answer: str, finish: str, use: dict[str, int]) -> dict[str, Any]:
    """A non-streamed answer that validates strictly as `openai.types.chat.ChatCompletion`."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": use,
    }


def chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    *,
    use: dict[str, int] | None = None,
    with_usage: bool = False,
) -> bytes:
    """One SSE event carrying a `ChatCompletionChunk`; `delta=None` makes the usage-only chunk."""
    data: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    data["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    if with_usage:
        data["usage"] = use
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def aki_result(endpoint: str, prompt_input: str, answer: str) -> dict[str, Any]:
    """AKI.IO's blocking `/api/call/{endpoint}` answer, figures as in its documented example."""
    prompt_length, generated = words(prompt_input), words(answer)
    return {
        "text": answer,
        "model_name": endpoint,
        "max_seq_len": 65536,
        "prompt_length": prompt_length,
        "num_generated_tokens": generated,
        "current_context_length": prompt_length + generated,
        "success": True,
        "total_duration": 0.01,
        "compute_duration": 0.01,
    }


def _iso_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise Invalid(name, f"Invalid '{name}': expected an ISO 8601 date such as 2024-01-31.") from None


def period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """The usage period: the query's dates, each defaulting to the first/last day of the current month."""
    first = today.replace(day=1)
    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    begin = _iso_date(start, "start_date") if start else first
    finish = _iso_date(end, "end_date") if end else last
    if finish < begin:
        raise Invalid("end_date", "Invalid 'end_date': it is before 'start_date'.")
    return begin, finish


def usage_report(begin: date, end: date, by_model: dict[str, int], included: int, cost_per_1k: float) -> dict[str, Any]:
    """ARKA's GET /v1/usage body, same keys and nesting as its documented example."""
    used = sum(by_model.values())
    overage = max(0, used - included)
    return {
        "period": {"start": begin.isoformat(), "end": end.isoformat()},
        "tokens_used": used,
        "tokens_included": included,
        "tokens_remaining": max(0, included - used),
        "overage_tokens": overage,
        "estimated_overage_cost": round(overage / 1000 * cost_per_1k, 6),
        "breakdown_by_model": dict(sorted(by_model.items())),
    }
