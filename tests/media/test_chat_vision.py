"""Images into chat_complete, end to end: the real server against the emulator, which decodes what it receives."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.media import png_bytes
from mcp_server.config import parse_config
from mcp_server.errors import ConfigError
from mcp_server.gateway import Gateway
from tests.support import in_memory_client
from tests.support_media import IMAGE_MODEL, media_config

pytestmark = pytest.mark.anyio
VISION = "seer"


@pytest.fixture
def config(config_data: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """gpt-5.5 (no vision), a vision model on the same upstream that takes 512 px, and an image model."""
    media_config(config_data)
    config_data["models"][VISION] = {
        "provider": "arkroute",
        "upstream": "gpt-5.4",
        "vision": True,
        "max_image_px": 512,
        "input_usd_per_mtok": 1.0,
        "output_usd_per_mtok": 2.0,
    }
    (tmp_path / "inputs").mkdir()
    config_data["server"]["input_dir"] = str(tmp_path / "inputs")
    return config_data


def sent_images(emulator: Emulator) -> list[str]:
    """The image URLs of the last chat request the emulator received."""
    body = emulator.calls("chat")[-1].json
    parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
    return [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]


async def test_a_generated_image_reaches_a_vision_model_downscaled(config: dict[str, Any], emulator: Emulator) -> None:
    """The done-criterion: generate, pass the media:// id, get an answer about that very image, in the ledger."""
    async with in_memory_client(config) as client:
        made = await client.call_tool(
            "generate_image", {"prompt": "a tall tower", "model": IMAGE_MODEL, "size": "1024x1536"}
        )
        assert not made.is_error, made.content
        uri = made.structured_content["images"][0]["uri"]
        result = await client.call_tool("chat_complete", {"prompt": "What is this?", "model": VISION, "images": [uri]})
        usage = (await client.call_tool("get_usage", {"model": VISION})).structured_content
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["content"] == "saw 1 image(s): 341x512 JPEG"  # 1024x1536 scaled to 512 on the long edge
    assert out["usage"]["prompt_tokens"] == 3 + 100  # the upstream's count, the image included
    assert sent_images(emulator)[0].startswith("data:image/jpeg;base64,")
    assert usage["requests"] == 1 and usage["prompt_tokens"] == 103


async def test_small_images_go_as_they_are_from_every_source(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    png = png_bytes(64, 48)
    (tmp_path / "inputs" / "chart.png").write_bytes(png)
    b64 = base64.b64encode(png).decode()
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image", "image": "chart.png"},
        {"type": "image", "image": b64},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}", "detail": "low"}},
    ]
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "chat_complete", {"messages": [{"role": "user", "content": content}], "model": VISION}
        )
    assert not result.is_error, result.content
    assert result.structured_content["content"] == "saw 3 image(s): 64x48 PNG, 64x48 PNG, 64x48 PNG"
    assert sent_images(emulator) == [f"data:image/png;base64,{b64}"] * 3  # the same bytes, not re-encoded
    assert emulator.calls("chat")[-1].json["messages"][0]["content"][3]["image_url"]["detail"] == "low"


async def test_a_model_without_vision_is_refused_before_sending(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "chat_complete",
            {"prompt": "see", "model": "gpt-5.5", "images": [base64.b64encode(png_bytes(8, 8)).decode()]},
        )
    assert result.is_error
    error = result.structured_content["error"]
    assert error["code"] == "images_not_supported" and error["param"] == "model"
    assert "'gpt-5.5' cannot take images" in error["message"] and VISION in error["message"]
    assert emulator.calls("chat") == []


@pytest.mark.parametrize(
    ("image", "code", "words"),
    [
        ("media://20240101-000000-nano-0123456789ab.png", "media_not_found", "no saved image"),
        ("../outside.png", "invalid_argument", "outside the input folder"),
        ("http://127.0.0.1:9/secret.png", "url_not_allowed", "Only public addresses"),
        (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"junk" * 10).decode(), "invalid_argument", "could not be decoded"),
    ],
)
async def test_image_sources_pass_the_reference_image_guards(
    config: dict[str, Any], emulator: Emulator, image: str, code: str, words: str
) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool("chat_complete", {"prompt": "see", "model": VISION, "images": [image]})
    assert result.is_error
    error = result.structured_content["error"]
    assert error["code"] == code and error["param"] == "images[0]" and words in error["message"]
    assert emulator.calls("chat") == []


async def test_images_count_in_the_budget_estimate(config: dict[str, Any], emulator: Emulator) -> None:
    """1,000,000 tokens an image at $1/Mtok is $1 before any text: a $0.50 budget refuses it, not the text alone."""
    config["models"][VISION]["image_input_tokens"] = 1_000_000
    config["budget"] = {"monthly_usd": 0.5}
    image = base64.b64encode(png_bytes(8, 8)).decode()
    async with in_memory_client(config) as client:
        text = await client.call_tool("chat_complete", {"prompt": "hi", "model": VISION, "max_tokens": 5})
        seen = await client.call_tool(
            "chat_complete", {"prompt": "hi", "model": VISION, "images": [image], "max_tokens": 5}
        )
    assert not text.is_error, text.content
    assert seen.is_error and seen.structured_content["error"]["code"] == "budget_exceeded"
    assert len(emulator.calls("chat")) == 1


def test_a_vision_model_needs_vision_fallbacks_and_a_provider_that_sends_images(config: dict[str, Any]) -> None:
    config["models"][VISION]["fallbacks"] = ["gpt-5.5"]
    with pytest.raises(ConfigError, match=r"fallbacks.*'gpt-5.5' does not"):
        parse_config(config)
    config["models"][VISION]["fallbacks"] = []
    config["models"]["llama3-8b"]["vision"] = True
    with pytest.raises(ConfigError, match=r"models\.llama3-8b\.vision.*cannot send images"):
        Gateway.from_config(parse_config(config))


async def test_cards_show_what_each_model_takes(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        listed = (await client.call_tool("list_models", {"kind": "chat"})).structured_content["models"]
    cards = {card["id"]: card for card in listed}
    assert cards[VISION]["vision"] is True and cards[VISION]["max_image_px"] == 512
    assert cards["gpt-5.5"]["vision"] is False and cards["gpt-5.5"]["image_input_tokens"] == 1600
    assert cards["gpt-5.5"]["structured_output"] is True and cards["gpt-5.5"]["tools"] is True
    assert cards["llama3-8b"]["structured_output"] is False and cards["llama3-8b"]["tools"] is False
