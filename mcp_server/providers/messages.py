"""The shapes of a chat conversation: messages with text or content parts (images), tool calls and tool results.

One model serves both sides: an agent's `messages` validate into it (OpenAI's spellings accepted too), and it
dumps as the OpenAI wire shape, so the adapter sends `model_dump` as it is.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, model_serializer, model_validator


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    """genroute's own image part: `image` is a media:// id, a file in input_dir, base64, a data: URL or an http(s)
    URL. Replaced by an `image_url` part (a data: URL) before anything is sent upstream."""

    type: Literal["image"]
    image: str


class ImageUrl(BaseModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlPart(BaseModel):
    """OpenAI's image part, accepted as given; its URL is resolved like `ImagePart.image`."""

    type: Literal["image_url"]
    image_url: ImageUrl


# told apart by `type`; no pydantic discriminator, which would put $refs into the tool's input schema
ContentPart = TextPart | ImagePart | ImageUrlPart


def parse_arguments(raw: str) -> Any:
    """A tool call's arguments: the JSON value they spell, or the raw string when they are not valid JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class ToolCall(BaseModel):
    """One call of a tool the model asked for: `arguments` parsed from JSON (the raw string when it is not JSON).

    Accepts OpenAI's `{id, type: "function", function: {name, arguments}}` too; in a request it is sent in that
    shape (see `wire`)."""

    id: str
    name: str
    arguments: Any = None

    @model_validator(mode="before")
    @classmethod
    def _openai_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("function"), dict):
            function = data["function"]
            arguments = function.get("arguments")
            parsed = parse_arguments(arguments) if isinstance(arguments, str) else arguments
            return {"id": data.get("id"), "name": function.get("name"), "arguments": parsed}
        return data

    def wire(self) -> dict[str, Any]:
        arguments = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}


class ToolCallFragment(BaseModel):
    """A piece of a streamed tool call: the first carries id and name, the rest more of the arguments' text."""

    index: int = 0
    id: str | None = None
    name: str | None = None
    arguments: str = ""


def assemble_tool_calls(fragments: list[ToolCallFragment]) -> list[ToolCall]:
    """The tool calls a stream's fragments spell, in index order."""
    calls: dict[int, dict[str, Any]] = {}
    for piece in fragments:
        call = calls.setdefault(piece.index, {"id": None, "name": "", "arguments": []})
        call["id"] = call["id"] or piece.id
        call["name"] = call["name"] or piece.name or ""
        call["arguments"].append(piece.arguments)
    return [
        ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=parse_arguments("".join(c["arguments"]) or "{}"))
        for i, c in sorted(calls.items())
    ]


class ChatMessage(BaseModel):
    """One turn: `content` is text or a list of parts; an assistant turn may carry `tool_calls`, and a `tool` turn
    answers one of them by `tool_call_id`."""

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs the `tool_call_id` of the call it answers")
        if self.content is None and not self.tool_calls:
            raise ValueError("a message needs `content` (or, from the assistant, `tool_calls`)")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry `tool_calls`")
        return self

    @model_serializer(mode="wrap")
    def _wire(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.tool_calls:
            data["tool_calls"] = [call.wire() for call in self.tool_calls]
            data.setdefault("content", None)  # as OpenAI's own answers carry it; some upstreams require the key
        return data

    def text(self) -> str:
        """The text of the turn (parts and tool call arguments included), for size limits and estimates."""
        if isinstance(self.content, str):
            text = self.content
        else:
            text = " ".join(part.text for part in self.content or [] if isinstance(part, TextPart))
        if self.tool_calls:
            text += " ".join(f" {call.name} {call.wire()['function']['arguments']}" for call in self.tool_calls)
        return text

    def images(self) -> list[ImagePart | ImageUrlPart]:
        if isinstance(self.content, str) or self.content is None:
            return []
        return [part for part in self.content if not isinstance(part, TextPart)]
