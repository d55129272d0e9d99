"""A chat stream cut midway is an error carrying the partial text, never a shortened success, and is not
retried once text reached the client. Run over stdio: only a real client sends the progressToken that
makes genroute stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.faults_support import error_of, output_of
from tests.support import stdio_client, write_config

pytestmark = pytest.mark.anyio
ARGUMENTS = {"prompt": "one two three four five six", "model": "gpt-5.5"}


async def stream(config: dict[str, Any], tmp_path: Path, emulator: Emulator, **fault: Any) -> tuple[Any, list[str]]:
    """One streamed chat_complete through `genroute serve` over stdio, with `fault` queued on the chat route."""
    path = write_config(tmp_path / "genroute.toml", config)
    pieces: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pieces.append(message or "")

    async with stdio_client(path) as client:
        if fault:
            emulator.fail_next("chat", **fault)
        result = await client.call_tool("chat_complete", ARGUMENTS, progress_callback=on_progress)
    return result, pieces


async def test_a_cut_stream_returns_the_partial_text_as_an_error(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    result, pieces = await stream(config_data, tmp_path, emulator, cut_stream_after=3)
    error = error_of(result)
    assert error["code"] == "stream_interrupted" and error["status"] == 502
    assert "incomplete" in error["message"]
    partial = result.structured_content["partial_text"]
    assert partial == "echo: one two " == "".join(pieces)  # exactly what the client already saw
    assert len(emulator.calls("chat")) == 1  # not retried: the client holds part of an answer


async def test_a_stream_cut_before_any_text_is_retried(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    result, pieces = await stream(config_data, tmp_path, emulator, cut_stream_after=0)
    out = output_of(result)
    assert out["content"] == "echo: one two three four five six" == "".join(pieces)
    assert len(emulator.calls("chat")) == 2


async def test_a_malformed_stream_is_a_clear_error(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    result, pieces = await stream(config_data, tmp_path, emulator, malformed=True)
    error = error_of(result)
    assert error["code"] == "malformed_response" and "arkroute" in error["message"]
    assert pieces == [] and "partial_text" not in result.structured_content
    assert len(emulator.calls("chat")) == 1


async def test_a_stream_cut_by_the_deadline_keeps_the_text_already_sent(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    config_data["routing"]["deadline_s"] = 1.0
    emulator.stream_chunk_delay_ms = 300  # seven pieces: the deadline falls in the middle
    result, pieces = await stream(config_data, tmp_path, emulator)
    error = error_of(result)
    assert error["code"] == "deadline_exceeded"
    partial = result.structured_content["partial_text"]
    full = "echo: one two three four five six"
    assert partial and partial == "".join(pieces) and full.startswith(partial) and len(partial) < len(full)
    assert len(emulator.calls("chat")) == 1


async def test_a_non_streamed_answer_cut_midway_is_an_interrupted_answer(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Without a progress token the whole answer comes as one body; an upstream that closes the connection halfway
    through it was reached and began to answer: the error says so, and does not send the user to check base_url."""
    path = write_config(tmp_path / "genroute.toml", config_data)
    async with stdio_client(path) as client:
        emulator.fail_next("chat", status=200, cut_body=True, times=3)
        result = await client.call_tool("chat_complete", ARGUMENTS)
    error = error_of(result)
    assert error["code"] == "answer_interrupted" and error["status"] == 502, error
    assert "interrupted" in error["message"] and "arkroute" in error["message"]
    assert "unreachable" not in error["message"] and "base_url" not in error["message"]
    assert len(emulator.calls("chat")) == 3  # retried as any 502: nothing had reached the client
