"""What a call costs: the quantities it used (or may use), priced from the catalog card or the upstream's own bill.

Before a call only an estimate exists, and it must not be lower than what the call can cost, since budgets
reserve it: prompt tokens at most one per UTF-8 byte of the messages (byte-level BPE and SentencePiece with byte
fallback never make more tokens than bytes) plus a fixed allowance per message and per call for the chat
template; the answer at its `max_tokens` (else what the context window leaves, capped at DEFAULT_OUTPUT_TOKENS);
n x the image price; duration x the per-second price; speech at its text's length; a transcription at the
file's measured duration.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from mcp_server.catalog import ModelCard

CHARS_PER_TOKEN = 4  # English with BPE tokenizers, typically: for the context window's room, never for money
TYPICAL_MESSAGE_TOKENS = 4  # role and separators, typically
MESSAGE_OVERHEAD_TOKENS = 12  # a message's role and separators: at most "developer: ...\n" in bytes
CALL_OVERHEAD_TOKENS = 16  # what a chat template adds once: begin-of-text, the assistant turn's opening
DEFAULT_OUTPUT_TOKENS = 4096
DEFAULT_VIDEO_SECONDS = 10.0
DEFAULT_AUDIO_SECONDS = 600.0  # a transcription whose length could not be measured (tools always measure)
_VIDEO_SECONDS_FIELDS = ("video_seconds", "duration_s", "duration", "seconds")


class Quantities(BaseModel):
    """What one call used (after it) or may use (before it)."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    images: int = Field(default=0, ge=0)
    video_seconds: float = Field(default=0.0, ge=0)
    characters: int = Field(default=0, ge=0)  # speech: input characters
    audio_seconds: float = Field(default=0.0, ge=0)  # transcription: seconds of audio heard
    reported_cost_usd: float | None = Field(default=None, ge=0)  # the upstream's own charge, when it says


def estimate_tokens(text: str) -> int:
    """The typical token count of `text` (4 characters a token): what an answer without counts is charged."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens_at_most(texts: Iterable[str]) -> int:
    """An upper bound on the prompt's tokens: one per UTF-8 byte, plus the chat template's overhead."""
    messages = list(texts)
    size = sum(len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass")) for text in messages)
    return size + len(messages) * MESSAGE_OVERHEAD_TOKENS + CALL_OVERHEAD_TOKENS


def chat_estimate(
    card: ModelCard, texts: Iterable[str], max_tokens: int | None, *, extra_prompt_tokens: int = 0
) -> Quantities:
    """The prompt at its upper bound and the answer at `max_tokens`, else at what the context window typically
    leaves (at most DEFAULT_OUTPUT_TOKENS). `extra_prompt_tokens`: what is not text (images, at the card's
    `image_input_tokens` each)."""
    messages = list(texts)
    prompt = prompt_tokens_at_most(messages) + extra_prompt_tokens
    if max_tokens is None:
        typical = sum(map(estimate_tokens, messages)) + len(messages) * TYPICAL_MESSAGE_TOKENS + extra_prompt_tokens
        room = (card.context_window - typical) if card.context_window else DEFAULT_OUTPUT_TOKENS
        max_tokens = max(1, min(DEFAULT_OUTPUT_TOKENS, room))
    return Quantities(prompt_tokens=prompt, completion_tokens=max_tokens)


def default_estimate(card: ModelCard) -> Quantities:
    """For a call whose tool gave no estimate: one image, the longest allowed video, a default-length answer."""
    if card.kind == "image":
        return Quantities(images=1)
    if card.kind == "video":
        return Quantities(video_seconds=max(card.durations) if card.durations else DEFAULT_VIDEO_SECONDS)
    if card.kind == "speech":
        return Quantities(characters=card.max_input_chars)
    if card.kind == "transcription":
        return Quantities(audio_seconds=DEFAULT_AUDIO_SECONDS)
    return Quantities(completion_tokens=DEFAULT_OUTPUT_TOKENS)


def price(card: ModelCard, used: Quantities) -> float:
    """The catalog price of `used`; a price the config leaves out counts as free."""
    p = card.pricing
    return (
        used.prompt_tokens * (p.input_usd_per_mtok or 0.0) / 1e6
        + used.completion_tokens * (p.output_usd_per_mtok or 0.0) / 1e6
        + used.images * (p.usd_per_image or 0.0)
        + used.video_seconds * (p.usd_per_second or 0.0)
        + used.characters * (p.usd_per_mchar or 0.0) / 1e6
        + used.audio_seconds * (p.usd_per_minute or 0.0) / 60
    )


def cost(card: ModelCard, used: Quantities) -> float:
    """The upstream's reported charge when it gave one, else the catalog price."""
    return used.reported_cost_usd if used.reported_cost_usd is not None else price(card, used)


def measure(value: object) -> Quantities:
    """What a provider result counts, read by convention: `usage.prompt_tokens`, `usage.completion_tokens`,
    `images` (a list or a count), a duration field for video, `cost_usd`."""
    fields = _fields(value)
    usage = _fields(fields.get("usage"))
    images = fields.get("images")
    return Quantities(
        prompt_tokens=int(_number(usage.get("prompt_tokens")) or 0),
        completion_tokens=int(_number(usage.get("completion_tokens")) or 0),
        images=len(images) if isinstance(images, list | tuple) else int(_number(images) or 0),
        video_seconds=max(_first_number(fields, _VIDEO_SECONDS_FIELDS) or 0.0, 0.0),
        characters=int(_number(fields.get("characters")) or 0),
        audio_seconds=_number(fields.get("audio_seconds")) or 0.0,
        reported_cost_usd=_number(fields.get("cost_usd")),
    )


_NO_FIELDS: dict[str, Any] = {}


def _fields(value: Any) -> dict[str, Any]:
    """A dict as is, else the object's own attributes (a model's fields; None has none). Read with `.get`, an
    absent name costs nothing, where `getattr` on a model raises and catches an AttributeError for each."""
    if isinstance(value, dict):
        return value
    return getattr(value, "__dict__", None) or _NO_FIELDS


def _first_number(fields: dict[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        if name in fields and (number := _number(fields[name])) is not None:
            return number
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def usd(amount: float) -> str:
    """Dollars as people read them, keeping the digits small amounts need: $12.5, $0.0005, $0."""
    text = f"{amount:,.6f}".rstrip("0").rstrip(".")
    return f"${text}"
