"""OpenAI-compatible HTTP gateways (ArkRoute, ARKA AI, ArcaneAPI, Arvae, llama.cpp's server, ...)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx2
from pydantic import BaseModel, ValidationError

from mcp_server.config import ProviderConfig
from mcp_server.errors import (
    AnswerCut,
    AnswerInterrupted,
    MediaTooLarge,
    UpstreamFailure,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from mcp_server.providers.base import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    GeneratedImage,
    ImageRequest,
    ImageResult,
    KeyCheck,
    ProviderAdapter,
    ProviderModel,
    ProviderUsage,
    TokenCounts,
    ToolCall,
    ToolCallFragment,
    VideoRequest,
    VideoStatus,
)
from mcp_server.providers.http import build_client, fetch, malformed, read_failure, retry_after_seconds, stream
from mcp_server.providers.keys import BearerFromPool
from mcp_server.providers.openai_audio import OpenAIAudio
from mcp_server.providers.redact import Redactor
from mcp_server.text import plural

# Sent by `genroute check` to learn whether the provider checks keys at all (never a real key).
WRONG_KEY = "genroute-check-not-a-real-key"
_DONE = {"completed", "complete", "succeeded", "success", "done"}
_FAILED = {"failed", "failure", "error", "cancelled", "canceled", "expired"}


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message | None = None
    finish_reason: str | None = None


class _Completion(BaseModel):
    """The fields genroute reads from a chat.completion; extra fields are ignored, as gateways add their own."""

    id: str | None = None
    model: str | None = None
    choices: list[_Choice]
    usage: TokenCounts | None = None
    cost: float | None = None  # some gateways report the charge


class _FunctionPiece(BaseModel):
    name: str | None = None
    arguments: str | None = None


class _ToolCallPiece(BaseModel):
    index: int = 0
    id: str | None = None
    function: _FunctionPiece | None = None

    def fragment(self) -> ToolCallFragment:
        function = self.function or _FunctionPiece()
        return ToolCallFragment(index=self.index, id=self.id, name=function.name, arguments=function.arguments or "")


class _Delta(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCallPiece] | None = None


class _ChunkChoice(BaseModel):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(BaseModel):
    id: str | None = None
    choices: list[_ChunkChoice] = []
    usage: TokenCounts | None = None


class _ModelList(BaseModel):
    data: list[ProviderModel]


class _ImageList(BaseModel):
    created: int | None = None
    data: list[GeneratedImage]
    cost: float | None = None


class _VideoTask(BaseModel):
    """ArkRoute's video task: `{task_id, status, progress?, video_url?, duration?, error?}`."""

    task_id: str | None = None
    id: str | None = None
    status: str = "processing"
    progress: float | None = None
    video_url: str | None = None
    duration: float | None = None
    error: dict[str, Any] | str | None = None  # {message, code} or a text; only ever read through read_failure


class OpenAIAdapter(OpenAIAudio, ProviderAdapter):
    kinds = frozenset({"chat", "image", "video", "speech", "transcription"})
    streaming = True
    image_inputs = True
    structured_output = True
    tool_calls = True
    image_edits = True
    speech = True
    transcription = True

    def __init__(self, name: str, config: ProviderConfig, redact: Redactor | None = None) -> None:
        super().__init__(name, config, redact)
        self.keyed = bool(self.keys)
        self.client = build_client(config, auth=BearerFromPool(self.keys) if self.keys else None)

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.upstream_model, **request.messages_and_sampling()}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _send(self, method: str, path: str, **options: Any) -> httpx2.Response:
        """One request through the shared send path (`json=`, or `data=` and `files=` for multipart)."""
        return await fetch(self.client, self.name, self.redact, method, path, **options)

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx2.Response:
        return await self._send("POST", path, json=body, headers=headers)

    def _json(self, response: httpx2.Response, model: type[BaseModel], what: str) -> Any:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise malformed(self.name, f"{what} was not the expected JSON") from None

    async def chat(self, request: ChatRequest) -> ChatResult:
        response = await self._post("/chat/completions", self._body(request, stream=False))
        completion: _Completion = self._json(response, _Completion, "chat completion")
        if not completion.choices:
            raise malformed(self.name, "chat completion without choices")
        choice = completion.choices[0]
        usage = completion.usage or TokenCounts()
        return ChatResult(
            id=completion.id or f"chatcmpl-{uuid.uuid4().hex[:24]}",
            content=(choice.message.content if choice.message else None) or "",
            finish_reason=choice.finish_reason,
            usage=usage,
            upstream_model=completion.model,
            cost_usd=completion.cost,
            tool_calls=(choice.message.tool_calls or None) if choice.message else None,
        )

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        call = self.client.build_request("POST", "/chat/completions", json=self._body(request, stream=True))
        text: list[str] = []
        finished = False
        try:
            async with stream(self.client, self.name, self.redact, call) as response:
                async for event in httpx2.EventSource(response):
                    if event.data.strip() == "[DONE]":
                        finished = True
                        break
                    chunk = self._chunk(event.data)
                    delta = ChatDelta(id=chunk.id, usage=chunk.usage)
                    for choice in chunk.choices[:1]:
                        delta.text = (choice.delta.content if choice.delta else None) or ""
                        if choice.delta and choice.delta.tool_calls:
                            delta.tool_calls = [piece.fragment() for piece in choice.delta.tool_calls]
                        delta.finish_reason = choice.finish_reason
                        finished = finished or choice.finish_reason is not None
                    text.append(delta.text)
                    yield delta
        except httpx2.SSEError:
            raise malformed(self.name, "streamed answer was not an event stream") from None
        except (AnswerInterrupted, UpstreamTimeout):
            if not text:  # nothing delivered yet: the retry loop may send it again
                raise
        if not finished:
            partial = "".join(text)
            raise AnswerCut(
                self.name,
                f"cut the stream after {len(partial)} characters; the answer is incomplete. Try again.",
                partial_text=partial,
            )

    def _chunk(self, data: str) -> _Chunk:
        try:
            return _Chunk.model_validate(json.loads(data))
        except (ValueError, ValidationError):
            raise malformed(self.name, "a streamed chunk was not valid JSON") from None

    async def _get(self, path: str, params: dict[str, str] | None = None) -> httpx2.Response:
        return await fetch(self.client, self.name, self.redact, "GET", path, params=params)

    async def list_models(self) -> list[ProviderModel]:
        listing: _ModelList = self._json(await self._get("/models"), _ModelList, "model list")
        return listing.data

    async def check_key(self) -> KeyCheck:
        """GET /models with the key (a refusal is a bad key), then with a wrong one: only when that is refused
        did the first answer prove the key (ArkRoute's listing, for one, is public)."""
        listed = f"GET /models listed {plural(len(await self.list_models()), 'model')}"
        if not self.keyed:
            return KeyCheck(key="no_key", detail=listed)
        request = self.client.build_request("GET", "/models", headers={"Authorization": f"Bearer {WRONG_KEY}"})
        async with stream(self.client, self.name, self.redact, request, any_status=True) as probe:
            pass  # the status is the answer; the body is not read
        if probe.status_code in (401, 403):
            return KeyCheck(key="verified", detail=f"{listed}; a wrong key gets HTTP {probe.status_code}")
        return KeyCheck(key="unchecked", detail=f"{listed}, but answers a wrong key too (HTTP {probe.status_code})")

    async def usage_report(self, start: date, end: date) -> ProviderUsage:
        """ARKA AI's GET /v1/usage?start_date=&end_date= (ISO dates); other gateways answer 404."""
        response = await self._get("/usage", {"start_date": start.isoformat(), "end_date": end.isoformat()})
        return self._json(response, ProviderUsage, "usage report")

    # ----- media -----------------------------------------------------------------------------------

    async def generate_image(self, request: ImageRequest, *, idempotency_key: str) -> ImageResult:
        body: dict[str, Any] = {"model": request.upstream_model, "prompt": request.prompt, "n": request.n}
        if request.size:
            body["size"] = request.size
        if request.image_b64:
            body["image"] = request.image_b64
        if request.response_format:
            body["response_format"] = request.response_format
        response = await self._post("/images/generations", body, {"Idempotency-Key": idempotency_key})
        return self._images(response, "image generation result")

    def _images(self, response: httpx2.Response, what: str) -> ImageResult:
        listing: _ImageList = self._json(response, _ImageList, what)
        if not listing.data or any(not (image.b64_json or image.url) for image in listing.data):
            raise malformed(self.name, f"{what} without image data")
        return ImageResult(images=listing.data, created=listing.created, cost_usd=listing.cost)

    async def submit_video(self, request: VideoRequest, *, idempotency_key: str) -> VideoStatus:
        body: dict[str, Any] = {"model": request.upstream_model, "prompt": request.prompt}
        if request.image_b64:
            body["image"] = request.image_b64
        if request.duration is not None:
            body["duration"] = int(request.duration) if float(request.duration).is_integer() else request.duration
        if request.aspect_ratio:
            body["aspect_ratio"] = request.aspect_ratio
        response = await self._post("/video/generations", body, {"Idempotency-Key": idempotency_key})
        return self._video(response, "video submission")

    async def video_status(self, task_id: str) -> VideoStatus:
        return self._video(await self._get(f"/video/status/{quote(task_id, safe='')}"), "video status")

    def _video(self, response: httpx2.Response, what: str) -> VideoStatus:
        task: _VideoTask = self._json(response, _VideoTask, what)
        task_id = task.task_id or task.id
        if not task_id:
            raise malformed(self.name, f"{what} without a task_id")
        state = task.status.lower()
        status = "completed" if state in _DONE else "failed" if state in _FAILED else "running"
        if status == "completed" and not task.video_url:
            raise malformed(self.name, f"{what} says completed but has no video_url")
        failure = read_failure(self.redact, {"error": task.error}, "no reason given") if status == "failed" else None
        return VideoStatus(
            task_id=task_id,
            status=status,
            progress=task.progress,
            video_url=task.video_url,
            duration=task.duration,
            error_message=failure.message if failure else None,
            error_code=failure.code if failure else None,
            retry_after_s=retry_after_seconds(response.headers),
        )

    async def download_stream(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        """GET a media URL on the pooled client; the key goes only to the provider's own origin."""
        target = httpx2.URL(url)
        if target.scheme not in ("http", "https"):
            raise malformed(self.name, "a media URL that is not http(s)")
        request = self.client.build_request("GET", target)
        if (target.scheme, target.host, target.port) != (
            self.client.base_url.scheme,
            self.client.base_url.host,
            self.client.base_url.port,
        ):
            request.headers.pop("authorization", None)
        host = self.redact(target.host)
        failure = UpstreamFailure(f"could not download the generated file ({host})")

        def refused(response: httpx2.Response) -> UpstreamHTTPError:
            return UpstreamHTTPError(self.name, response.status_code, failure)

        shown = f"{target.scheme}://{target.host}"
        async with stream(
            self.client, self.name, self.redact, request, shown_url=shown, refused=refused, follow_redirects=True
        ) as response:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(self.name, max_bytes)
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(self.name, max_bytes)
                yield chunk

    async def aclose(self) -> None:
        await self.client.aclose()


def _too_large(provider: str, max_bytes: int) -> MediaTooLarge:
    return MediaTooLarge(
        provider,
        f"sent a media file larger than the {max_bytes} byte limit "
        "(raise [media] max_image_bytes / max_video_bytes in the config to allow it).",
    )
