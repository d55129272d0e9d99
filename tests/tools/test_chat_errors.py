"""Upstream failures and bad input reach the client as clear isError results with the error envelope."""

from __future__ import annotations

from typing import Any

import pytest

from emulator import Emulator
from tests.support import in_memory_client

pytestmark = pytest.mark.anyio


async def call(config: dict[str, Any], arguments: dict[str, Any]) -> Any:
    async with in_memory_client(config) as client:
        return await client.call_tool("chat_complete", arguments)


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content["error"]


async def test_upstream_error_envelope_is_kept_with_status(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next(
        "chat",
        status=400,
        body={
            "error": {
                "message": "max_tokens is too large",
                "type": "invalid_request_error",
                "param": "max_tokens",
                "code": "bad_max",
            }
        },
    )
    error = error_of(await call(config_data, {"prompt": "hi"}))
    assert error["status"] == 400
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "max_tokens" and error["code"] == "bad_max"
    assert "arkroute" in error["message"] and "max_tokens is too large" in error["message"]


async def test_non_json_error_body_still_gives_a_clear_error(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("chat", status=502, body="<html>Bad Gateway from the edge</html>", times=3)
    result = await call(config_data, {"prompt": "hi"})
    error = error_of(result)
    assert error["status"] == 502 and "Bad Gateway" in error["message"]
    assert len(emulator.calls("chat")) == 3  # a 502 is retried twice (rules: tests/reliability/test_retries.py)
    assert "Traceback" not in result.content[0].text


async def test_bad_key_says_which_provider_and_what_to_check(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.api_key = "another-key"
    error = error_of(await call(config_data, {"prompt": "hi"}))
    assert error["status"] == 401
    assert "arkroute" in error["message"] and "API key" in error["message"]


async def test_malformed_json_answer_is_a_clear_error(config_data: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("chat", malformed=True)
    error = error_of(await call(config_data, {"prompt": "hi"}))
    assert error["code"] == "malformed_response" and error["status"] == 502


async def test_unreachable_provider_names_provider_and_url(config_data: dict[str, Any]) -> None:
    config_data["providers"]["arkroute"]["base_url"] = "http://127.0.0.1:9/v1"
    error = error_of(await call(config_data, {"prompt": "hi"}))
    assert error["code"] == "upstream_unreachable"
    assert "arkroute" in error["message"] and "127.0.0.1:9" in error["message"]


async def test_timeout_is_reported_not_hung(config_data: dict[str, Any], emulator: Emulator) -> None:
    config_data["providers"]["arkroute"]["timeout_s"] = 0.3
    emulator.latency_ms = 3000
    error = error_of(await call(config_data, {"prompt": "hi"}))
    assert error["code"] == "upstream_timeout" and error["status"] == 504


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({}, "messages"),
        ({"prompt": "   "}, "messages"),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "prompt"),
    ],
)
async def test_bad_arguments_name_the_argument_and_call_nothing(
    config_data: dict[str, Any], emulator: Emulator, arguments: dict[str, Any], param: str
) -> None:
    error = error_of(await call(config_data, arguments))
    assert error["param"] == param and error["status"] == 400
    assert emulator.calls("chat") == []


async def test_a_conversation_over_the_character_cap_says_the_cap_and_what_to_do(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    turns = [{"role": "user", "content": "a" * 600_000}, {"role": "assistant", "content": "b" * 400_001}]
    error = error_of(await call(config_data, {"messages": turns}))
    assert error["param"] == "messages" and error["code"] == "invalid_argument"
    assert "1,000,001 characters" in error["message"] and "at most 1,000,000" in error["message"]
    assert "Shorten it" in error["message"]
    assert emulator.calls("chat") == []


async def test_out_of_range_sampling_value_is_refused_before_upstream(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    result = await call(config_data, {"prompt": "hi", "temperature": 5})
    assert result.is_error
    assert "temperature" in result.content[0].text and "less than or equal to 2" in result.content[0].text
    assert emulator.calls("chat") == []


async def test_unknown_model_lists_closest_ids(config_data: dict[str, Any], emulator: Emulator) -> None:
    error = error_of(await call(config_data, {"prompt": "hi", "model": "gpt-5.6"}))
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "gpt-5.5" in error["message"] and "gpt-5.4" in error["message"]
    assert emulator.calls("chat") == []
