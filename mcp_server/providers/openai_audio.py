"""The OpenAI API's multipart and audio endpoints: image edits, text to speech, transcription.

A mixin of `OpenAIAdapter` (kept apart so openai.py stays readable); every request goes through the adapter's
`_send`, i.e. the one send path in providers/http.py, multipart bodies included (httpx2's `files=`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mcp_server.providers.base import (
    ImageRequest,
    ImageResult,
    Segment,
    SpeechRequest,
    SpeechResult,
    TranscriptionRequest,
    TranscriptionResult,
)
from mcp_server.providers.http import malformed

if TYPE_CHECKING:
    import httpx2


class _Transcription(BaseModel):
    """`json` answers carry `text`; `verbose_json` adds `language`, `duration` and `segments`."""

    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[Segment] | None = None


class OpenAIAudio:
    """Image edits, speech and transcription over the adapter's pooled client (see OpenAIAdapter)."""

    name: str

    if TYPE_CHECKING:

        async def _send(self, method: str, path: str, **options: Any) -> httpx2.Response: ...
        def _json(self, response: httpx2.Response, model: type[BaseModel], what: str) -> Any: ...
        def _images(self, response: httpx2.Response, what: str) -> ImageResult: ...

    async def edit_image(self, request: ImageRequest, *, idempotency_key: str) -> ImageResult:
        """POST /images/edits: one `image[]` part per image, the optional `mask`, the rest as form fields."""
        files = [("image[]", (image.name, image.data, image.mime_type)) for image in request.images]
        if request.mask is not None:
            files.append(("mask", (request.mask.name, request.mask.data, request.mask.mime_type)))
        form = {"model": request.upstream_model, "prompt": request.prompt, "n": str(request.n)}
        if request.size:
            form["size"] = request.size
        if request.response_format:
            form["response_format"] = request.response_format
        response = await self._send(
            "POST", "/images/edits", data=form, files=files, headers={"Idempotency-Key": idempotency_key}
        )
        return self._images(response, "image edit result")

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        """POST /audio/speech (JSON); the answer is the audio itself."""
        body = request.model_dump(exclude_none=True, exclude={"upstream_model"})
        response = await self._send("POST", "/audio/speech", json={"model": request.upstream_model, **body})
        if not response.content or response.headers.get("content-type", "").startswith("application/json"):
            raise malformed(self.name, "speech answer without audio")
        return SpeechResult(audio=response.content, characters=len(request.input))

    async def transcribe(self, request: TranscriptionRequest) -> TranscriptionResult:
        """POST /audio/transcriptions (multipart: `file` and form fields); verbose_json when timestamps are asked."""
        form = {"model": request.upstream_model, "response_format": "verbose_json" if request.timestamps else "json"}
        if request.language:
            form["language"] = request.language
        if request.prompt:
            form["prompt"] = request.prompt
        audio = request.audio
        response = await self._send(
            "POST", "/audio/transcriptions", data=form, files=[("file", (audio.name, audio.data, audio.mime_type))]
        )
        answer: _Transcription = self._json(response, _Transcription, "transcription")
        return TranscriptionResult(
            text=answer.text,
            language=answer.language,
            stated_duration_s=answer.duration,
            segments=answer.segments if request.timestamps else None,
            audio_seconds=answer.duration or 0.0,
        )
