"""AKI.IO's native model-centric API: POST {base_url}/api/call/{endpoint}, the key inside the JSON body."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from mcp_server.config import ProviderConfig
from mcp_server.errors import KeyRefused, UpstreamHTTPError
from mcp_server.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    KeyCheck,
    ProviderAdapter,
    ProviderModel,
    TokenCounts,
)
from mcp_server.providers.http import (
    build_client,
    error_from_response,
    fetch,
    malformed,
    read_failure,
    stream,
)
from mcp_server.providers.redact import Redactor


class AkiCallFailed(UpstreamHTTPError):
    """AKI answered (HTTP 200) that the call did not succeed (`success: false`, the reason in `error`)."""

    code = "aki_call_failed"


class _AkiAnswer(BaseModel):
    success: bool = False
    text: str | None = None
    error: str | dict[str, Any] | None = None
    prompt_length: int = 0
    num_generated_tokens: int = 0
    model_name: str | None = None


def render_prompt(messages: list[ChatMessage]) -> str:
    """AKI's chat endpoints take one prompt string: roles become line prefixes, ending on the assistant's turn."""
    lines = [f"{m.role}: {m.text()}" for m in messages]
    return "\n".join([*lines, "assistant:"])


class AkiAdapter(ProviderAdapter):
    kinds = frozenset({"chat"})  # AKI's other endpoints (images, speech) are not spoken here yet
    streaming = False  # chat_stream delivers the blocking call's answer in one piece

    def __init__(self, name: str, config: ProviderConfig, redact: Redactor | None = None) -> None:
        super().__init__(name, config, redact)
        self.client = build_client(config)

    def _body(self, request: ChatRequest, key: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "key": key,
            "prompt_input": render_prompt(request.messages),
            "wait_for_result": True,
        }
        if request.max_tokens is not None:
            body["max_gen_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        return body

    async def chat(self, request: ChatRequest) -> ChatResult:
        self.refuse_unsupported(request)  # one prompt string: no images, JSON mode or tools
        path = f"/api/call/{request.upstream_model}"
        with self._key() as key:  # AKI takes its key in the body
            response = await fetch(self.client, self.name, self.redact, "POST", path, json=self._body(request, key))
        try:
            answer = _AkiAnswer.model_validate_json(response.content)
        except ValidationError:
            raise malformed(self.name, "call result was not the expected JSON") from None
        if not answer.success or answer.text is None:
            failure = read_failure(self.redact, {"error": answer.error}, "the call did not succeed")
            raise AkiCallFailed(self.name, response.status_code, failure)
        usage = TokenCounts(
            prompt_tokens=answer.prompt_length,
            completion_tokens=answer.num_generated_tokens,
            total_tokens=answer.prompt_length + answer.num_generated_tokens,
        )
        return ChatResult(
            id=f"aki-{uuid.uuid4().hex[:24]}",
            content=answer.text,
            finish_reason="stop",
            usage=usage,
            upstream_model=answer.model_name,
        )

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """The blocking call, delivered as one piece: AKI's own streaming needs its client library."""
        result = await self.chat(request)
        yield ChatDelta(id=result.id, text=result.content, finish_reason=result.finish_reason, usage=result.usage)

    async def list_models(self) -> list[ProviderModel]:
        """AKI.IO has no listing call; reaching the host is the check that costs nothing."""
        request = self.client.build_request("GET", "/")
        async with stream(self.client, self.name, self.redact, request, any_status=True):
            return []  # any answer will do; its body is not read

    async def check_key(self) -> KeyCheck:
        """AKI.IO's GET /api/validate_key?key=... (what its own client library calls at start): free, and it
        answers whether the key is valid. A host without it (404) is reachable but the key is not checked."""
        if not self.keys:
            await self.list_models()
            return KeyCheck(key="no_key", detail="the host answers")
        with self._key() as key:
            request = self.client.build_request("GET", "/api/validate_key", params={"key": key, "version": "genroute"})
            async with stream(self.client, self.name, self.redact, request, any_status=True) as response:
                await response.aread()
        if response.status_code == 404:
            return KeyCheck(key="unchecked", detail="the host answers, but has no /api/validate_key")
        if response.status_code >= 400:
            raise error_from_response(self.name, response, self.redact)
        try:
            answer = _AkiAnswer.model_validate_json(response.content)
        except ValidationError:
            raise malformed(self.name, "key validation result was not the expected JSON") from None
        if not answer.success:
            failure = read_failure(self.redact, {"error": answer.error}, "the key was not accepted")
            raise KeyRefused(self.name, 401, failure)
        return KeyCheck(key="verified", detail="GET /api/validate_key accepted it")

    @contextmanager
    def _key(self) -> Iterator[str]:
        """A key from the pool for one request ("" without one: AKI then says what is missing)."""
        if not self.keys:
            yield ""
            return
        with self.keys.lease() as key:
            yield key.value

    async def aclose(self) -> None:
        await self.client.aclose()
