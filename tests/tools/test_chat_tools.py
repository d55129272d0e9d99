"""Tool calls end to end: a two-turn exchange through the router and ledger, streamed and not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from emulator import Emulator
from tests.support import http_gateway, in_memory_client, write_config

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
        },
    },
}


async def test_a_two_turn_tool_call_exchange(config_data: dict[str, Any], emulator: Emulator) -> None:
    question = {"role": "user", "content": "Paris"}
    async with in_memory_client(config_data) as client:
        first = await client.call_tool(
            "chat_complete", {"messages": [question], "model": "gpt-5.5", "tools": [WEATHER], "tool_choice": "auto"}
        )
        assert not first.is_error, first.content
        call = first.structured_content["tool_calls"][0]
        turns = [
            question,
            {"role": "assistant", "content": None, "tool_calls": first.structured_content["tool_calls"]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"},
        ]
        second = await client.call_tool("chat_complete", {"messages": turns, "model": "gpt-5.5", "tools": [WEATHER]})
        usage = (await client.call_tool("get_usage", {})).structured_content
    out = first.structured_content
    assert out["finish_reason"] == "tool_calls" and out["content"] == ""
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris", "days": 1}  # parsed
    assert f"tool call {call['id']}: get_weather" in first.content[0].text
    assert not second.is_error, second.content
    assert second.structured_content["content"] == f"tool {call['id']} said: sunny, 21 C"
    sent = emulator.calls("chat")
    assert sent[0].json["tools"] == [WEATHER] and sent[0].json["tool_choice"] == "auto"
    assistant, tool = sent[1].json["messages"][1:]
    assert assistant["tool_calls"] == [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 1}'},
        }
    ]
    assert tool == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": call["id"]}
    assert usage["requests"] == 2


async def test_arguments_that_are_not_json_are_kept_raw(config_data: dict[str, Any], emulator: Emulator) -> None:
    """An OpenAI-shaped call with broken arguments (as a model may send back) is accepted and sent on as it was."""
    broken = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Paris"}}
    turns = [
        {"role": "user", "content": "Paris"},
        {"role": "assistant", "tool_calls": [broken]},
        {"role": "tool", "tool_call_id": "call_1", "content": "error: bad arguments"},
    ]
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"messages": turns, "model": "gpt-5.5"})
    assert not result.is_error, result.content
    assert emulator.calls("chat")[-1].json["messages"][1]["tool_calls"] == [broken]


async def test_streamed_tool_calls_are_assembled_from_fragments(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    path = write_config(tmp_path / "genroute.toml", config_data)
    with http_gateway(path) as gateway:
        async with Client(gateway.mcp_url) as client:
            result = await client.call_tool(
                "chat_complete",
                {
                    "prompt": "Rome",
                    "tools": [WEATHER],
                    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                },
                progress_callback=on_progress,
            )
            text = await client.call_tool("chat_complete", {"prompt": "plain words"}, progress_callback=on_progress)
    assert not result.is_error, result.content
    body = emulator.calls("chat")[0].json
    assert body["stream"] is True and body["tool_choice"]["function"]["name"] == "get_weather"
    out = result.structured_content
    assert out["finish_reason"] == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in out["tool_calls"]] == [("get_weather", {"city": "Rome", "days": 1})]
    assert text.structured_content["content"] == "echo: plain words" and "".join(progress) == "echo: plain words"


async def test_reasoning_effort_goes_only_to_models_that_declare_it(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    config_data["models"]["gpt-5.5"]["reasoning_effort"] = True
    async with in_memory_client(config_data) as client:
        for model in ("gpt-5.5", "gpt-5.4"):
            result = await client.call_tool(
                "chat_complete", {"prompt": "think", "model": model, "reasoning_effort": "high"}
            )
            assert not result.is_error, result.content
    declared, other = (call.json for call in emulator.calls("chat"))
    assert declared["reasoning_effort"] == "high" and "reasoning_effort" not in other


async def test_tools_are_refused_for_a_model_that_cannot_call_them(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"prompt": "x", "model": "llama3-8b", "tools": [WEATHER]})
        orphan = await client.call_tool("chat_complete", {"messages": [{"role": "tool", "content": "42"}]})
        malformed = [
            await client.call_tool("chat_complete", {"prompt": "x", **arguments})
            for arguments in (
                {"tools": [{"type": "function"}]},  # no function
                {"tools": [WEATHER, WEATHER]},  # one name twice
                {"tool_choice": "required"},  # nothing to call
                {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            )
        ]
    error = result.structured_content["error"]
    assert error["code"] == "tools_not_supported" and error["param"] == "tools" and "gpt-5.5" in error["message"]
    assert orphan.is_error and "tool_call_id" in json.dumps(orphan.structured_content)
    params = [result.structured_content["error"]["param"] for result in malformed]
    assert params == ["tools", "tools", "tool_choice", "tool_choice"]
    assert emulator.calls("aki") == [] and emulator.calls("chat") == []
