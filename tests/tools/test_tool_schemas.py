"""Tool schemas as clients see them: flat, still exact, and free-text arguments taken as they are sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp import Client

from emulator import Emulator
from mcp_server.schemas import compact_schema, declares_param_headers
from tests.support import http_gateway, in_memory_client, write_config
from tests.support_audio import audio_config

pytestmark = pytest.mark.anyio


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


async def test_listed_schemas_are_flat_and_results_validate(config_data: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(audio_config(config_data)) as client:  # every kind: every tool is listed
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.5"})
    for tool in tools.values():
        for schema in (tool.input_schema, tool.output_schema or {}):
            text = json.dumps(schema)
            assert "$ref" not in text and "$defs" not in text, f"{tool.name}: {text[:300]}"
            assert not any("title" in node and isinstance(node["title"], str) for node in _walk(schema))
            Draft202012Validator.check_schema(schema)
    chat = tools["chat_complete"]
    # the nested message shape survived inlining, with its constraints
    messages = chat.input_schema["properties"]["messages"]
    item = messages["items"]
    assert messages["type"] == ["array", "null"]  # anyOf [array, null] folded, its items kept
    assert item["required"] == ["role"] and "user" in item["properties"]["role"]["enum"]
    assert "tool_call_id" in item["properties"]
    temperature = chat.input_schema["properties"]["temperature"]
    assert (temperature["type"], temperature["maximum"], temperature["minimum"]) == (["number", "null"], 2, 0)
    # a real result validates against the flat output schema, and a wrong one does not
    assert chat.output_schema is not None
    validator = Draft202012Validator(chat.output_schema)
    assert result.structured_content is not None
    validator.validate(result.structured_content)
    broken = {**result.structured_content, "usage": {"prompt_tokens": "many"}}
    assert not validator.is_valid(broken)


def test_compact_schema_keeps_recursive_models_and_property_names() -> None:
    schema = {
        "$defs": {
            "Node": {
                "title": "Node",
                "type": "object",
                "properties": {
                    "title": {"title": "Title", "type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
            }
        },
        "properties": {
            "root": {"$ref": "#/$defs/Node", "description": "the tree"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": {"title": "kept as data"}},
        },
        "type": "object",
    }
    flat = compact_schema(schema)
    root = flat["properties"]["root"]
    assert root["description"] == "the tree" and "title" in root["properties"]  # a property named title stays
    assert root["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}  # recursion keeps its $ref
    assert "Node" in flat["$defs"]
    assert flat["properties"]["note"] == {"type": ["string", "null"], "default": {"title": "kept as data"}}
    validator = Draft202012Validator(flat)
    assert validator.is_valid({"root": {"title": "a", "children": [{"title": "b", "children": []}]}})
    assert not validator.is_valid({"root": {"title": 1}})
    assert not declares_param_headers(flat)
    assert declares_param_headers({"properties": {"region": {"type": "string", "x-mcp-header": "Region"}}})


def test_a_nullable_object_or_list_folds_into_one_type_list_with_the_same_meaning() -> None:
    """`anyOf [{type: T, <T's keywords>}, {type: null}]` becomes `type: [T, null]`: jsonschema no longer builds
    an error for the failing branch of every null. What it accepts and refuses stays the same."""
    calls = {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}
    schema = {
        "type": "object",
        "properties": {
            "calls": {"anyOf": [calls, {"type": "null"}], "default": None, "description": "kept"},
            "capped": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["limit"], "description": "inner"}]},
            "choice": {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},  # enum refuses null
        },
    }
    flat = compact_schema(schema)
    props = flat["properties"]
    expected_calls = {"type": ["array", "null"], "items": calls["items"], "default": None, "description": "kept"}
    assert props["calls"] == expected_calls
    assert props["capped"] == {"type": ["object", "null"], "required": ["limit"], "description": "inner"}
    assert "anyOf" in props["choice"]  # an enum is not a string-only keyword: left as it was
    before, after = Draft202012Validator(schema), Draft202012Validator(flat)
    for instance in (
        {"calls": None, "capped": None},
        {"calls": [{"id": "x"}], "capped": {"limit": 1}},
        {"calls": [{}]},
        {"calls": "x"},
        {"capped": {}},
        {"capped": 3},
        {"choice": None},
        {"choice": "c"},
    ):
        assert before.is_valid(instance) == after.is_valid(instance), instance


@pytest.mark.parametrize("prompt", ['["a", "b"]', '{"task": "summarise"}', "null", "42"])
async def test_a_prompt_that_looks_like_json_is_sent_as_text(
    prompt: str, config_data: dict[str, Any], emulator: Emulator
) -> None:
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"prompt": prompt, "system": "[1]", "model": "gpt-5.5"})
    assert not result.is_error, result.content
    assert result.structured_content is not None and result.structured_content["content"] == f"echo: {prompt}"
    sent = emulator.calls("chat")[-1].json
    assert sent["messages"] == [{"role": "system", "content": "[1]"}, {"role": "user", "content": prompt}]


async def test_null_optional_text_still_means_absent(config_data: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config_data) as client:
        result = await client.call_tool("chat_complete", {"prompt": "hi", "model": None, "system": None})
        wrong = await client.call_tool("chat_complete", {"prompt": 5})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["model"] == "gpt-5.5"  # the default chat model
    assert emulator.calls("chat")[-1].json["messages"] == [{"role": "user", "content": "hi"}]
    assert wrong.is_error and "prompt" in wrong.content[0].text  # type: ignore[union-attr]


async def test_tool_calls_over_http_after_tuning(config_data: dict[str, Any], tmp_path: Path) -> None:
    """Over streamable HTTP the SDK's Mcp-Param header check is skipped for header-less tools: calls still work."""
    with http_gateway(write_config(tmp_path / "genroute.toml", config_data)) as gateway:
        async with Client(gateway.mcp_url) as client:
            result = await client.call_tool("chat_complete", {"prompt": "over http", "model": "gpt-5.5"})
            listed = await client.call_tool("list_models", {"kind": "chat"})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["content"] == "echo: over http"
    assert not listed.is_error
