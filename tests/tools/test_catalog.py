"""Model resolution, list_models, the models:// resources and presets as prompts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator import Emulator
from mcp_server.catalog import Catalog
from mcp_server.config import parse_config
from mcp_server.errors import GatewayError
from tests.support import in_memory_client

pytestmark = pytest.mark.anyio


def catalog_of(config: dict[str, Any]) -> Catalog:
    return Catalog.from_config(parse_config(config))


def test_resolves_id_alias_and_provider_form(config_data: dict[str, Any]) -> None:
    catalog = catalog_of(config_data)
    assert catalog.resolve("gpt-5.5", "chat").id == "gpt-5.5"
    assert catalog.resolve("default-chat", "chat").id == "gpt-5.5"
    assert catalog.resolve("aki/llama3_8b_chat", "chat").id == "llama3-8b"
    assert catalog.resolve(None, "chat").id == "gpt-5.5"  # first chat model in file order


def test_configured_default_wins(config_data: dict[str, Any]) -> None:
    config_data["server"]["default_chat_model"] = "llama3-8b"
    assert catalog_of(config_data).resolve(None, "chat").id == "llama3-8b"


def test_wrong_kind_is_refused(config_data: dict[str, Any]) -> None:
    config_data["models"]["nano-banana-2"] = {"provider": "arkroute", "kind": "image"}
    with pytest.raises(GatewayError) as caught:
        catalog_of(config_data).resolve("nano-banana-2", "chat")
    assert caught.value.code == "wrong_model_kind"
    assert "image model" in caught.value.message and "gpt-5.5" in caught.value.message


def test_no_model_of_a_kind_says_how_to_add_one(config_data: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as caught:
        catalog_of(config_data).resolve(None, "video")
    assert caught.value.code == "no_model_configured" and 'kind = "video"' in caught.value.message


async def test_list_models_filters_by_kind(config_data: dict[str, Any]) -> None:
    config_data["models"]["nano-banana-2"] = {"provider": "arkroute", "kind": "image", "usd_per_image": 0.02}
    async with in_memory_client(config_data) as client:
        everything = await client.call_tool("list_models", {})
        images = await client.call_tool("list_models", {"kind": "image"})
        bad = await client.call_tool("list_models", {"kind": "audio"})
    ids = [m["id"] for m in everything.structured_content["models"]]
    assert ids == ["gpt-5.5", "gpt-5.4", "llama3-8b", "nano-banana-2"]
    card = everything.structured_content["models"][0]
    assert card["pricing"]["input_usd_per_mtok"] == 1.25 and card["aliases"] == ["default-chat"]
    assert card["context_window"] == 400000
    assert [m["id"] for m in images.structured_content["models"]] == ["nano-banana-2"]
    assert bad.is_error and "kind" in bad.content[0].text


async def test_model_resources(config_data: dict[str, Any]) -> None:
    async with in_memory_client(config_data) as client:
        catalog = await client.read_resource("models://catalog")
        card = await client.read_resource("models://gpt-5.5")
        templates = await client.list_resource_templates()
    assert [m["id"] for m in json.loads(catalog.contents[0].text)["models"]][:2] == ["gpt-5.5", "gpt-5.4"]
    assert json.loads(card.contents[0].text)["provider"] == "arkroute"
    assert any(t.uri_template.startswith("models://") for t in templates.resource_templates)


async def test_unknown_model_resource_is_an_error(config_data: dict[str, Any]) -> None:
    async with in_memory_client(config_data) as client:
        with pytest.raises(Exception, match="Unknown model"):
            await client.read_resource("models://nope")


async def test_presets_are_prompts_with_template_arguments(config_data: dict[str, Any]) -> None:
    async with in_memory_client(config_data) as client:
        prompts = await client.list_prompts()
        rendered = await client.get_prompt("blog-writer", {"topic": "tides", "audience": "kids"})
    prompt = next(p for p in prompts.prompts if p.name == "blog-writer")
    assert prompt.description == "Draft a blog post"
    assert [(a.name, a.required) for a in prompt.arguments or []] == [("topic", True), ("audience", True)]
    text = rendered.messages[0].content.text
    assert text.startswith("Write a blog post about tides for kids")
    assert "gpt-5.5" in text


async def test_discover_adds_the_providers_listing(config_data: dict[str, Any], emulator: Emulator) -> None:
    config_data["providers"]["arkroute"]["discover"] = True
    emulator.known_models = {"gpt-5.5", "mystery-model"}
    async with in_memory_client(config_data) as client:
        listed = await client.call_tool("list_models", {"kind": "chat"})
        answer = await client.call_tool("chat_complete", {"prompt": "hi", "model": "arkroute/mystery-model"})
    ids = [m["id"] for m in listed.structured_content["models"]]
    assert "arkroute/mystery-model" in ids and ids.count("gpt-5.5") == 1 and "arkroute/gpt-5.5" not in ids
    assert not answer.is_error and emulator.calls("chat")[-1].json["model"] == "mystery-model"
