"""AKI.IO's native API: key in the JSON body, prompt in prompt_input, usage from prompt_length/num_generated_tokens."""

from __future__ import annotations

from typing import Any

import pytest

from emulator import Emulator
from tests.support import in_memory_client

pytestmark = pytest.mark.anyio


async def test_aki_chat_maps_prompt_and_usage(config_data: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config_data) as client:
        result = await client.call_tool(
            "chat_complete", {"model": "llama3-8b", "prompt": "tell a joke", "system": "be brief", "max_tokens": 50}
        )
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["provider"] == "aki" and out["model"] == "llama3-8b"
    assert out["content"] == "echo: assistant:"  # the emulator echoes the last line of prompt_input
    sent = emulator.calls("aki")[-1]
    assert sent.path == "/api/call/llama3_8b_chat"
    assert "authorization" not in sent.headers
    assert sent.json["key"] == "test-key" and sent.json["wait_for_result"] is True
    assert sent.json["prompt_input"] == "system: be brief\nuser: tell a joke\nassistant:"
    assert sent.json["max_gen_tokens"] == 50
    words = len(sent.json["prompt_input"].split())
    assert out["usage"] == {"prompt_tokens": words, "completion_tokens": 2, "total_tokens": words + 2}


async def test_aki_success_false_is_an_error(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("aki", status=200, body={"success": False, "error": "GPU pool exhausted"})
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"model": "llama3-8b", "prompt": "hi"})
    assert result.is_error
    assert "GPU pool exhausted" in result.structured_content["error"]["message"]


async def test_aki_bad_key(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.api_key = "other"
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"model": "llama3-8b", "prompt": "hi"})
    assert result.is_error and result.structured_content["error"]["status"] == 401
