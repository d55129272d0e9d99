"""The one interface every provider protocol implements, and the shapes that cross it.

Adapters speak one upstream protocol each and never retry: the router owns retries, fallbacks and
accounting, so a retry may go to another provider.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from mcp_server.config import Kind, ProviderConfig
from mcp_server.errors import Unsupported
from mcp_server.providers.keys import KeyPool
from mcp_server.providers.messages import ChatMessage, ToolCall, ToolCallFragment
from mcp_server.providers.redact import Redactor
from mcp_server.text import plural


class ChatRequest(BaseModel):
    """A chat call as the router hands it to an adapter (upstream model id already resolved)."""

    upstream_model: str
    messages: list[ChatMessage]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None  # OpenAI's: {"type": "json_object"} or {"type": "json_schema", ...}
    tools: list[dict[str, Any]] | None = None  # OpenAI function definitions, passed through
    tool_choice: str | dict[str, Any] | None = None
    reasoning_effort: str | None = None

    def has_images(self) -> bool:
        return any(message.images() for message in self.messages)

    def messages_and_sampling(self) -> dict[str, Any]:
        """`messages` and the optional sampling fields that were set: every field but `upstream_model`, named as
        the OpenAI API names them. One dump on every call's path (one per message plus one for the sampling
        fields cost about twice as much)."""
        return self.model_dump(exclude_none=True, exclude={"upstream_model"})


# One call's token counts: the `usage` object of OpenAI-style answers and of chat_complete's result (the field keeps
# that name). Elsewhere "usage" means the ledger and its reports (usage/, get_usage). No docstring: it would become
# the description of chat_complete's `usage` in its output schema.
class TokenCounts(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatResult(BaseModel):
    id: str
    content: str
    finish_reason: str | None = None
    usage: TokenCounts = Field(default_factory=TokenCounts)
    upstream_model: str | None = None
    cost_usd: float | None = None  # set only when the upstream reports its own charge
    tool_calls: list[ToolCall] | None = None  # the tools the model called (finish_reason "tool_calls")


class ChatDelta(BaseModel):
    """One piece of a streamed answer; the last one carries finish_reason and usage when known."""

    text: str = ""
    finish_reason: str | None = None
    usage: TokenCounts | None = None
    id: str | None = None
    tool_calls: list[ToolCallFragment] | None = None


class ProviderModel(BaseModel):
    """A model as a provider's own listing describes it (for `discover` and `genroute check`), with the USD
    prices its `pricing` object states, if any (see `listed_prices`)."""

    id: str
    owned_by: str | None = None
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_pricing(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("pricing"), dict):
            return {**data, **listed_prices(data["pricing"])}
        return data


# A listing's `pricing` object: USD per token under OpenRouter's names (the convention OpenAI-compatible routers
# follow, as strings or numbers), or USD per million tokens under genroute's own names.
_PER_TOKEN = {"prompt": "input_usd_per_mtok", "completion": "output_usd_per_mtok"}
_PER_MTOK = ("input_usd_per_mtok", "output_usd_per_mtok")


def listed_prices(pricing: dict[str, Any]) -> dict[str, float]:
    """The USD per million token prices a listing's `pricing` object states; anything unreadable (a negative
    "variable price" marker, text, a missing key) is left out rather than guessed."""
    prices: dict[str, float] = {}
    for name, field in _PER_TOKEN.items():
        if (value := _usd(pricing.get(name))) is not None:
            prices[field] = round(value * 1e6, 9)
    for field in _PER_MTOK:
        if (value := _usd(pricing.get(field))) is not None:
            prices[field] = value
    return prices


def _usd(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


class KeyCheck(BaseModel):
    """What `genroute check` learnt about a provider without paying for a call."""

    # verified: the key was accepted where a wrong one is refused; unchecked: the provider answered, but
    # nothing it offers for free tells a good key from a bad one; no_key: the provider needs none
    key: Literal["verified", "unchecked", "no_key"]
    detail: str  # what was asked and what came back, e.g. "GET /models listed 3 models"


class UsagePeriod(BaseModel):
    start: str | None = None
    end: str | None = None


class ProviderUsage(BaseModel):
    """A provider's own account of usage, in ARKA AI's GET /v1/usage shape (fields it leaves out stay None)."""

    period: UsagePeriod | None = None
    tokens_used: int | None = None
    tokens_included: int | None = None
    tokens_remaining: int | None = None
    overage_tokens: int | None = None
    estimated_overage_cost: float | None = None
    breakdown_by_model: dict[str, int] = Field(default_factory=dict)


class InputFile(BaseModel):
    """A file sent up as one multipart part (an image to edit, a mask, audio to transcribe)."""

    data: bytes
    mime_type: str
    name: str  # the part's filename: upstreams read the type from its extension


class ImageRequest(BaseModel):
    """One image generation call (ArkRoute / OpenAI images API), upstream model id already resolved."""

    upstream_model: str
    prompt: str
    n: int = 1
    size: str | None = None
    image_b64: str | None = None  # reference image for image-to-image, plain base64
    response_format: Literal["url", "b64_json"] | None = None
    images: list[InputFile] = Field(default_factory=list)  # edits: the images to edit (one `image[]` part each)
    mask: InputFile | None = None  # edits: a PNG whose transparent pixels mark what to change


class GeneratedImage(BaseModel):
    """One image as the upstream answered: inline base64 or a URL to download (or both)."""

    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImageResult(BaseModel):
    images: list[GeneratedImage]
    created: int | None = None
    cost_usd: float | None = None  # set only when the upstream reports its own charge


class SpeechRequest(BaseModel):
    """Text to speech (OpenAI's /audio/speech), upstream model id already resolved."""

    upstream_model: str
    input: str
    voice: str
    response_format: str
    speed: float | None = None
    instructions: str | None = None


class SpeechResult(BaseModel):
    audio: bytes
    characters: int  # what the ledger counts and the price is per
    cost_usd: float | None = None


class TranscriptionRequest(BaseModel):
    upstream_model: str
    audio: InputFile
    language: str | None = None
    prompt: str | None = None
    timestamps: bool = False  # verbose_json: duration and segments


class Segment(BaseModel):
    start: float
    end: float
    text: str


class TranscriptionResult(BaseModel):
    text: str
    language: str | None = None
    stated_duration_s: float | None = None  # as the upstream states it (`duration` would read as video)
    segments: list[Segment] | None = None
    audio_seconds: float = 0.0  # what the ledger counts: `duration`, else measured from the file


class VideoRequest(BaseModel):
    """One video task submission, upstream model id already resolved."""

    upstream_model: str
    prompt: str
    image_b64: str | None = None  # first frame for image-to-video, plain base64
    duration: float | None = None
    aspect_ratio: str | None = None


VideoState = Literal["running", "completed", "failed"]


class VideoStatus(BaseModel):
    """A video task as the upstream reports it; `retry_after_s` comes from the answer's Retry-After header."""

    task_id: str
    status: VideoState
    progress: float | None = None  # 0-100 where the provider says
    video_url: str | None = None
    duration: float | None = None
    error_message: str | None = None
    error_code: str | None = None
    retry_after_s: float | None = None


class ProviderAdapter(ABC):
    """One upstream protocol. One instance per configured provider, alive for the server's lifetime.

    What it can do is declared on the class, so the config is checked against it at load (a model of a kind
    its provider cannot serve is a config error, not a refusal at call time) and callers can ask before calling.
    """

    kinds: ClassVar[frozenset[Kind]] = frozenset({"chat"})  # the model kinds it serves
    streaming: ClassVar[bool] = False  # chat_stream yields the answer as it is generated, not in one piece
    image_inputs: ClassVar[bool] = False  # chat messages may carry images
    structured_output: ClassVar[bool] = False  # chat takes response_format (JSON, JSON Schema)
    tool_calls: ClassVar[bool] = False  # chat takes tools and answers with tool calls
    image_edits: ClassVar[bool] = False  # an image model may edit a given image
    speech: ClassVar[bool] = False  # text to speech
    transcription: ClassVar[bool] = False  # speech to text

    def __init__(self, name: str, config: ProviderConfig, redact: Redactor | None = None) -> None:
        """`redact` scrubs this provider's failures: every configured secret (`redactor_for`), else its own keys."""
        self.name = name
        self.config = config
        self.keys = KeyPool(config.api_keys())  # the keys it sends, one per request (providers/keys.py)
        self.redact = redact or Redactor(*(value for _, value in config.api_keys()))

    @abstractmethod
    async def chat(self, request: ChatRequest) -> ChatResult: ...

    @abstractmethod
    def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]: ...

    @abstractmethod
    async def list_models(self) -> list[ProviderModel]:
        """The provider's own model list; also the cheapest call that proves key and URL work."""

    async def check_key(self) -> KeyCheck:
        """Whether the provider answers and, where it can tell at no cost, accepts the key; GatewayError if not.
        By default the model list, which proves the URL but not the key (a listing may be public)."""
        models = await self.list_models()
        return KeyCheck(key="unchecked", detail=f"its model list answers ({plural(len(models), 'model')})")

    async def usage_report(self, start: date, end: date) -> ProviderUsage:
        """The provider's own usage figures for [start, end] (whole days); most providers have none."""
        raise self.unsupported("usage reports")

    async def generate_image(self, request: ImageRequest, *, idempotency_key: str) -> ImageResult:
        """Generate images; `idempotency_key` goes out as the Idempotency-Key header, the same on every retry."""
        raise self.unsupported("image generation")

    async def edit_image(self, request: ImageRequest, *, idempotency_key: str) -> ImageResult:
        """Edit `request.images` (optionally within `request.mask`); only where `image_edits` is declared."""
        raise self.unsupported("image edits")

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        raise self.unsupported("text to speech")

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        raise self.unsupported("transcription")

    async def submit_video(self, request: VideoRequest, *, idempotency_key: str) -> VideoStatus:
        """Start a video task and return its id; sends `idempotency_key` as the Idempotency-Key header."""
        raise self.unsupported("video generation")

    async def video_status(self, task_id: str) -> VideoStatus:
        raise self.unsupported("video generation")

    def download_stream(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        """The body at `url` (a media URL this provider returned) in chunks; GatewayError past `max_bytes`."""
        raise self.unsupported("media downloads")

    async def download(self, url: str, max_bytes: int) -> bytes:
        """The whole body at `url`, refused past `max_bytes`."""
        parts: list[bytes] = []
        stream = self.download_stream(url, max_bytes)
        try:
            async for chunk in stream:
                parts.append(chunk)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return b"".join(parts)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections or loaded weights."""

    def refuse_unsupported(self, request: ChatRequest) -> None:
        """Refuse what this adapter cannot send (the catalog keeps such calls away; this is the last guard)."""
        if request.has_images() and not self.image_inputs:
            raise self.unsupported("images in chat messages")
        if request.response_format is not None and not self.structured_output:
            raise self.unsupported("response_format")
        if (request.tools or any(m.tool_calls or m.role == "tool" for m in request.messages)) and not self.tool_calls:
            raise self.unsupported("tool calls")

    def unsupported(self, operation: str) -> Unsupported:
        return Unsupported(f"Provider '{self.name}' does not support {operation}.")
