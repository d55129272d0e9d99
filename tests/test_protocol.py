"""Protocol utilities the conformance suite checks, and argument errors in genroute's error envelope."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND, ResourceTemplateReference

from emulator import Emulator
from mcp_server.config import parse_config
from mcp_server.gateway import Gateway
from mcp_server.server import build_server

pytestmark = pytest.mark.anyio


def legacy_client(config: dict[str, Any]) -> Client:
    """2025-11-25 sessions: where logging/setLevel and resources/subscribe still exist."""
    return Client(build_server(Gateway.from_config(parse_config(config))), mode="legacy")


@pytest.mark.filterwarnings("ignore:.*2026-07-28")  # deprecated in the newest protocol, still in 2025-11-25
async def test_set_level_and_complete_are_answered(config_data: dict[str, Any]) -> None:
    async with legacy_client(config_data) as client:
        capabilities = client.server_capabilities
        level = await client.set_logging_level("warning")
        template = ResourceTemplateReference(uri="models://{+model_id}")
        models = await client.complete(template, {"name": "model_id", "value": "gpt"})
        aliases = await client.complete(template, {"name": "model_id", "value": "DEFAULT"})
        nothing = await client.complete(template, {"name": "model_id", "value": "zzz"})
    assert capabilities is not None
    assert capabilities.logging is not None and capabilities.completions is not None
    assert level.model_dump(exclude_none=True) == {}
    assert models.completion.values == ["gpt-5.5", "gpt-5.4"] and models.completion.total == 2
    assert aliases.completion.values == ["default-chat"]
    assert nothing.completion.values == []


@pytest.mark.filterwarnings("ignore:.*2026-07-28")
async def test_list_changes_are_advertised_and_resource_subscriptions_are_not(config_data: dict[str, Any]) -> None:
    """A config reload changes the lists (reload.py), so both protocols say so: listChanged on 2025-11-25, and
    subscriptions/listen served on 2026-07-28 (where the SDK derives every flag from it). No resource is ever
    updated, so resources/subscribe stays unserved."""
    async with legacy_client(config_data) as client:
        legacy = client.server_capabilities
        with pytest.raises(MCPError) as refused:
            await client.subscribe_resource("jobs://recent")
    gateway = Gateway.from_config(parse_config(config_data))
    async with Client(build_server(gateway)) as client:
        modern = client.server_capabilities
        async with client.listen(tools_list_changed=True):
            pass
    assert legacy is not None and legacy.resources is not None and not legacy.resources.subscribe
    assert legacy.tools is not None and legacy.tools.list_changed and legacy.prompts and legacy.prompts.list_changed
    assert modern is not None and modern.tools is not None and modern.tools.list_changed
    assert refused.value.error.code == METHOD_NOT_FOUND


async def test_bad_arguments_name_the_argument_in_the_error_envelope(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    async with legacy_client(config_data) as client:
        wrong_type = await client.call_tool("chat_complete", {"prompt": "hi", "top_p": -1, "max_tokens": "many"})
        missing_role = await client.call_tool("chat_complete", {"messages": [{"content": "hi"}]})
        bad_kind = await client.call_tool("list_models", {"kind": "audio"})
    assert not emulator.calls("chat")  # refused before any provider call
    for result, param, words in (
        (wrong_type, "top_p", ["`max_tokens`", "`top_p`", "greater than 0"]),
        (missing_role, "messages", ["`messages.0.role`", "Field required"]),
        (bad_kind, "kind", ["`kind`", "'chat', 'image', 'video', 'speech' or 'transcription'"]),
    ):
        assert result.is_error
        error = result.structured_content["error"]
        assert error["param"] == param and error["code"] == "invalid_argument" and error["status"] == 400
        assert all(word in error["message"] for word in words), error["message"]
        assert "pydantic" not in error["message"] and "input_value" not in error["message"]


async def test_error_results_match_the_advertised_output_schema(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    """Strict clients validate even isError results against outputSchema; genroute's envelope must pass."""
    async with legacy_client(config_data) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        answered = await client.call_tool("chat_complete", {"prompt": "hi"})
        emulator.fail_next("chat", status=400)  # not retried: the error reaches the client as is
        failed = await client.call_tool("chat_complete", {"prompt": "hi"})
        refused = await client.call_tool("list_models", {"kind": "audio"})
    for tool in tools.values():
        if tool.output_schema is not None:
            Draft202012Validator.check_schema(tool.output_schema)
    chat = Draft202012Validator(tools["chat_complete"].output_schema)
    assert not answered.is_error and chat.is_valid(answered.structured_content)
    assert failed.is_error and chat.is_valid(failed.structured_content)
    assert not chat.is_valid({"content": "half an answer"})  # the schema still says something
    assert refused.is_error and Draft202012Validator(tools["list_models"].output_schema).is_valid(
        refused.structured_content
    )
