"""chat_complete end to end: the real server (in memory, stdio, HTTP) against the emulator on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from emulator import Emulator
from tests.support import http_gateway, in_memory_client, stdio_client, write_config

pytestmark = pytest.mark.anyio

ClientFactory = Callable[[dict[str, Any]], AbstractAsyncContextManager[Client]]


@pytest.fixture(params=["memory", "stdio", "http"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> ClientFactory:
    """Open a Client to genroute over one transport, from a config dict."""

    @asynccontextmanager
    async def open_client(config: dict[str, Any]) -> AsyncIterator[Client]:
        if request.param == "memory":
            async with in_memory_client(config) as client:
                yield client
            return
        path = write_config(tmp_path / "genroute.toml", config)
        if request.param == "stdio":
            async with stdio_client(path) as client:
                yield client
            return
        with http_gateway(path) as gateway:
            async with Client(gateway.mcp_url) as client:
                yield client

    return open_client


async def test_chat_complete_answers_through_each_transport(
    connect: ClientFactory, config_data: dict[str, Any], emulator: Emulator
) -> None:
    async with connect(config_data) as client:
        result = await client.call_tool("chat_complete", {"prompt": "hello there", "model": "gpt-5.5", "seed": 7})
    assert not result.is_error, result.content
    out = result.structured_content
    assert out is not None
    assert out["content"] == "echo: hello there"
    assert out["model"] == "gpt-5.5" and out["provider"] == "arkroute"
    assert out["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    # what does not apply to a plain answer is left out, not sent as null (the schema does not require it)
    assert None not in out.values()
    assert not {"fallback_from", "tool_calls", "json", "budget_capped"} & out.keys()
    sent = emulator.calls("chat")[-1]
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json == {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hello there"}], "seed": 7}


async def test_streaming_sends_progress_as_text_arrives(
    connect: ClientFactory, config_data: dict[str, Any], emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["connect"] == "memory":
        pytest.skip("the in-memory transport carries no progressToken; stdio and HTTP cover streaming")
    pieces: list[str] = []
    values: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        values.append(progress)
        pieces.append(message or "")

    async with connect(config_data) as client:
        result = await client.call_tool(
            "chat_complete",
            {"messages": [{"role": "user", "content": "one two three four five"}], "model": "default-chat"},
            progress_callback=on_progress,
        )
    assert not result.is_error, result.content
    content = result.structured_content["content"]
    assert content == "echo: one two three four five"
    assert "".join(pieces) == content
    assert len(pieces) > 3
    assert values == sorted(values) and len(set(values)) == len(values)  # strictly increasing
    body = emulator.calls("chat")[-1].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_cancellation_aborts_the_upstream_request(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """The client gives up mid-stream: genroute closes the upstream stream instead of letting it run on."""

    emulator.reply = " ".join(f"word{i}" for i in range(200))
    emulator.stream_chunk_delay_ms = 50  # ~10 s of streaming if nobody cancels
    path = write_config(tmp_path / "genroute.toml", config_data)
    first_piece = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first_piece.set()

    async with stdio_client(path) as client:
        with anyio.move_on_after(30):
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    await client.call_tool("chat_complete", {"prompt": "go"}, progress_callback=on_progress)

                group.start_soon(call)
                await first_piece.wait()
                group.cancel_scope.cancel()
        with anyio.fail_after(10):
            while emulator.aborted_streams == 0:  # noqa: ASYNC110 - polling another thread's counter
                await anyio.sleep(0.05)
        # the server is still healthy after the cancellation
        after = await client.call_tool("list_models", {})
    assert emulator.aborted_streams == 1
    assert not after.is_error
