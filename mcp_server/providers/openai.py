"""OpenAI-compatible HTTP gateways (ArkRoute, ARKA AI, ArcaneAPI, Arvae, llama.cpp's server, ...)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx2
from pydantic import BaseModel, ValidationError

from mcp_server.config import ProviderConfig
from mcp_server.errors import GatewayError
from mcp_server.providers.base import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    ProviderAdapter,
    ProviderModel,
    ProviderUsage,
    Usage,
)
from mcp_server.providers.http import Redactor, build_client, error_from_response, malformed, transport_error


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message | None = None
    finish_reason: str | None = None


class _Completion(BaseModel):
    """The fields genroute reads from a chat.completion; extra fields are ignored, as gateways add their own."""

    id: str | None = None
    model: str | None = None
    choices: list[_Choice]
    usage: Usage | None = None
    cost: float | None = None  # some gateways report the charge


class _Delta(BaseModel):
    content: str | None = None


class _ChunkChoice(BaseModel):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(BaseModel):
    id: str | None = None
    choices: list[_ChunkChoice] = []
    usage: Usage | None = None


class _ModelList(BaseModel):
    data: list[ProviderModel]


class OpenAIAdapter(ProviderAdapter):
    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config
        key = config.api_key()
        self.redact = Redactor(key)
        self.client = build_client(config, {"Authorization": f"Bearer {key}"} if key else None)

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.upstream_model,
            "messages": [m.model_dump() for m in request.messages],
            **request.sampling_params(),
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx2.Response:
        try:
            response = await self.client.post(path, json=body, headers=headers)
        except httpx2.TransportError as exc:
            raise transport_error(self.name, exc, self.redact(self.config.base_url or "")) from None
        if response.status_code >= 400:
            raise error_from_response(self.name, response, self.redact)
        return response

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
        usage = completion.usage or Usage()
        return ChatResult(
            id=completion.id or f"chatcmpl-{uuid.uuid4().hex[:24]}",
            content=(choice.message.content if choice.message else None) or "",
            finish_reason=choice.finish_reason,
            usage=usage,
            upstream_model=completion.model,
            cost_usd=completion.cost,
        )

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        body = self._body(request, stream=True)
        text: list[str] = []
        finished = False
        try:
            async with self.client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from_response(self.name, response, self.redact)
                async for event in httpx2.EventSource(response):
                    if event.data.strip() == "[DONE]":
                        finished = True
                        break
                    chunk = self._chunk(event.data)
                    delta = ChatDelta(id=chunk.id, usage=chunk.usage)
                    for choice in chunk.choices[:1]:
                        delta.text = (choice.delta.content if choice.delta else None) or ""
                        delta.finish_reason = choice.finish_reason
                        finished = finished or choice.finish_reason is not None
                    text.append(delta.text)
                    yield delta
        except httpx2.SSEError:
            raise malformed(self.name, "streamed answer was not an event stream") from None
        except httpx2.TransportError as exc:
            if not text:
                raise transport_error(self.name, exc, self.redact(self.config.base_url or "")) from None
        if not finished:
            partial = "".join(text)
            raise GatewayError(
                f"Provider '{self.name}' cut the stream after {len(partial)} characters; "
                "the answer is incomplete. Try again.",
                type="upstream_error",
                code="stream_interrupted",
                status=502,
                partial_text=partial,
            )

    def _chunk(self, data: str) -> _Chunk:
        try:
            return _Chunk.model_validate(json.loads(data))
        except (ValueError, ValidationError):
            raise malformed(self.name, "a streamed chunk was not valid JSON") from None

    async def _get(self, path: str, params: dict[str, str] | None = None) -> httpx2.Response:
        try:
            response = await self.client.get(path, params=params)
        except httpx2.TransportError as exc:
            raise transport_error(self.name, exc, self.redact(self.config.base_url or "")) from None
        if response.status_code >= 400:
            raise error_from_response(self.name, response, self.redact)
        return response

    async def list_models(self) -> list[ProviderModel]:
        listing: _ModelList = self._json(await self._get("/models"), _ModelList, "model list")
        return listing.data

    async def usage(self, start: date, end: date) -> ProviderUsage:
        """ARKA AI's GET /v1/usage?start_date=&end_date= (ISO dates); other gateways answer 404."""
        response = await self._get("/usage", {"start_date": start.isoformat(), "end_date": end.isoformat()})
        return self._json(response, ProviderUsage, "usage report")

    async def aclose(self) -> None:
        await self.client.aclose()
