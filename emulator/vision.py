"""The emulator's multimodal chat: it decodes the images it is sent (Pillow) and says what it saw, answers JSON that
fits `response_format`'s schema, and calls a tool when `tools` are given (streamed as fragments, as OpenAI does).

Hooked into `emulator/app.py`'s chat route in two places; everything else about chat stays in emulator/chat.py.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response

from emulator import chat

IMAGE_TOKENS = 100  # what one image adds to the emulator's prompt_tokens


@dataclass
class Special:
    """An answer that depends on images, response_format or tools."""

    text: str
    images: list[str] = field(default_factory=list)  # "WxH FORMAT" per image received
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {id, name, arguments (a JSON string)}


def _image(url: Any, where: str) -> str:
    """'WxH FORMAT' of a data: URL's image, decoded for real; 400 when it is not one."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(url, str):
        raise chat.Invalid(where, f"Invalid '{where}': expected a string URL.")
    if url.startswith(("http://", "https://")):
        return "remote-url"
    header, _, payload = url.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise chat.Invalid(where, f"Invalid '{where}': expected a base64 data:image/... URL or an http(s) URL.")
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as img:
            img.load()
            return f"{img.width}x{img.height} {img.format}"
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError):
        raise chat.Invalid(where, f"Invalid '{where}': the image could not be decoded.", code="invalid_image") from None


def _images(messages: list[Any]) -> list[str]:
    seen: list[str] = []
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") == "image_url":
                where = f"messages[{i}].content[{j}].image_url.url"
                seen.append(_image((part.get("image_url") or {}).get("url"), where))
    return seen


def instance(schema: Any, text: str) -> Any:
    """A value that satisfies `schema` (the subset structured outputs use), strings filled with `text`."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance(schema[key][0], text)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {name: instance(sub, text) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [instance(schema.get("items"), text)] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def reply(body: Any, last_user: str) -> Special | None:
    """The answer to a request with images, response_format or tools; None for plain chat (echo as before)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    messages: list[Any] = body["messages"]
    images = _images(messages)
    seen = f"saw {len(images)} image(s): {', '.join(images)}" if images else ""
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    tools = body.get("tools")
    if tools and last.get("role") != "tool" and body.get("tool_choice") != "none":
        return Special("", images, [_tool_call(tools, body.get("tool_choice"), last_user)])
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        schema = (response_format.get("json_schema") or {}).get("schema")
        value = instance(schema, seen or last_user) if schema else {"answer": seen or last_user}
        return Special(json.dumps(value), images)
    if last.get("role") == "tool":
        return Special(f"tool {last.get('tool_call_id')} said: {last.get('content')}", images)
    return Special(seen, images) if images else None


def _tool_call(tools: list[Any], choice: Any, text: str) -> dict[str, Any]:
    functions = [t.get("function") or {} for t in tools if isinstance(t, dict)]
    wanted = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    function = next((f for f in functions if f.get("name") == wanted), functions[0] if functions else {})
    arguments = instance(function.get("parameters") or {"type": "object"}, text)
    return {"id": f"call_{uuid.uuid4().hex[:12]}", "name": function.get("name", ""), "arguments": json.dumps(arguments)}


def _wire(call: dict[str, Any]) -> dict[str, Any]:
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def tool_call_completion(cid: str, created: int, model: str, special: Special, use: dict[str, int]) -> Response:
    body = chat.completion(cid, created, model, "", "tool_calls", use)
    calls = [_wire(call) for call in special.tool_calls]
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": calls}
    return JSONResponse(body)


async def tool_call_events(
    cid: str, created: int, model: str, special: Special, use: dict[str, int], include_usage: bool
) -> AsyncIterator[bytes]:
    """Each call as OpenAI streams it: id and name first, then the arguments in pieces, then finish_reason."""
    extra = {"with_usage": include_usage}
    for index, call in enumerate(special.tool_calls):
        head = {"index": index, **_wire({**call, "arguments": ""})}
        yield chat.chunk(cid, created, model, {"role": "assistant", "content": None, "tool_calls": [head]}, **extra)
        arguments = call["arguments"]
        step = max(1, len(arguments) // 3)
        for start in range(0, len(arguments), step):
            piece = {"index": index, "function": {"arguments": arguments[start : start + step]}}
            yield chat.chunk(cid, created, model, {"tool_calls": [piece]}, **extra)
    yield chat.chunk(cid, created, model, {}, "tool_calls", **extra)
    if include_usage:
        yield chat.chunk(cid, created, model, None, use=use, with_usage=True)
    yield chat.DONE
