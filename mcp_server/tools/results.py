"""Shaping tool results: structured output on success, the error envelope on failure, nothing raw ever."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, ParamSpec

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ContentBlock, TextContent
from pydantic import BaseModel, Field, WithJsonSchema, WrapValidator

from mcp_server.errors import ErrorBody, GatewayError, ServerFault

log = logging.getLogger("genroute.tools")
P = ParamSpec("P")


def _none_or_str(value: Any, handler: Any) -> Any:
    return None if value is None else handler(value)


# An optional free-text argument (a prompt, a system instruction). Typed `str | None` the SDK would try
# json.loads on every such string and turn a prompt that happens to be JSON ('["a", "b"]', '{"k": 1}')
# into a list or dict that then fails validation (and pay a JSON parse error per call). Declared as
# `str` with a None pass-through, the SDK leaves the text alone; the schema still says string or null.
OptionalText = Annotated[str, WrapValidator(_none_or_str), WithJsonSchema({"type": ["string", "null"]})]


def _is_none(value: Any) -> bool:
    return value is None


def absent_when_none(description: str | None = None) -> Any:
    """An optional result field that is left out, rather than sent as null, when it does not apply.

    A field with no default is always there (null meaning "unknown", as cost_usd). Leaving out the ones that do not
    apply keeps results short for a model reading them, and cheaper for clients that check each result against the
    outputSchema: every property present costs such a client one more subschema pass (the SDK's jsonschema check
    of a chat result went from 114 to 85 us without its four usual nulls). The schema does not change: the field is
    not required, its default is null."""
    return Field(default=None, exclude_if=_is_none, description=description)


def ok(
    output: BaseModel | dict[str, Any], content: Sequence[ContentBlock] = (), text: str | None = None
) -> CallToolResult:
    """Structured content plus a text block (the JSON, or `text`) for clients that read only content.

    `output` is the tool's output model, or (on a hot path) its JSON-mode dump built directly: the SDK validates
    structured content against the tool's output model anyway, so building the model first would validate twice."""
    if isinstance(output, dict):
        structured = output
        fallback = json.dumps(output, ensure_ascii=False, separators=(",", ":")) if not text else ""
    else:
        structured = output.model_dump(mode="json", by_alias=True)
        fallback = output.model_dump_json(by_alias=True) if not text else ""
    blocks: list[ContentBlock] = [TextContent(type="text", text=text or fallback)]
    blocks.extend(content)
    return CallToolResult(content=blocks, structured_content=structured)


def failed(error: GatewayError | ErrorBody) -> CallToolResult:
    """The error envelope: of a failure now, or of one recorded earlier (a failed video job's)."""
    envelope = error.to_dict() if isinstance(error, GatewayError) else {"error": error.model_dump()}
    return CallToolResult(
        content=[TextContent(type="text", text=error.message)],
        structured_content=envelope,
        is_error=True,
    )


def internal_error() -> CallToolResult:
    return failed(
        ServerFault("genroute hit an internal error while handling this call; it has been logged. Try again.")
    )


def guarded(fn: Callable[P, Awaitable[CallToolResult]]) -> Callable[P, Awaitable[CallToolResult]]:
    """Turn GatewayError into the error envelope and any other exception into a generic one (logged here)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except GatewayError as error:
            log.info(
                "%s failed: %s%s",
                fn.__name__,
                error.code or error.type,
                f" (HTTP {error.status})" if error.status else "",
            )
            return failed(error)
        except Exception:
            log.exception("%s raised an unexpected error", fn.__name__)
            return internal_error()

    return wrapper


def progress_token(ctx: Context[Any] | None) -> str | int | None:
    """The client's progressToken, if it asked for progress notifications."""
    if ctx is None:
        return None
    meta: Any = ctx.request_context.meta or {}
    token = meta.get("progress_token", meta.get("progressToken")) if isinstance(meta, dict) else None
    return token if isinstance(token, str | int) and not isinstance(token, bool) else None
