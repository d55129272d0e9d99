"""generate_image with several input images and a mask: /images/edits as multipart, refusals before upstream,
Idempotency-Key across retries, files and costs as for generation."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import ImageContent, ResourceLink

from emulator import Emulator
from emulator.audio import decode_multipart
from emulator.media import png_bytes
from tests.support import in_memory_client
from tests.support_audio import EDIT_MODEL, audio_config, mask_png, served
from tests.support_media import IMAGE_MODEL

pytestmark = pytest.mark.anyio


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    return result.structured_content["error"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_edit_with_a_mask(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path, transport: str
) -> None:
    """Generate an image, then edit it by its media:// id with a second image and a mask: every part arrives."""
    config = audio_config(config_data)
    emulator.fail_next("image_edits", status=500)  # retried: the same Idempotency-Key both times
    async with served(config, tmp_path, transport) as client:
        first = await client.call_tool(
            "generate_image", {"prompt": "a harbour", "model": IMAGE_MODEL, "size": "256x256"}
        )
        source = first.structured_content["images"][0]["uri"]
        edited = await client.call_tool(
            "generate_image",
            {
                "prompt": "add a red boat",
                "model": EDIT_MODEL,
                "reference_images": [source, b64(png_bytes(256, 256))],
                "mask": b64(mask_png(256, 256)),
                "size": "256x256",
            },
        )
        usage = await client.call_tool("get_usage", {})
    assert not edited.is_error, edited.content
    calls = emulator.calls("image_edits")
    keys = [call.headers.get("idempotency-key") for call in calls]
    assert len(calls) == 2 and keys[0] and keys[0] == keys[1]
    fields, files = decode_multipart(calls[-1].headers["content-type"], calls[-1].body)
    assert fields == {
        "model": "gpt-image-1",
        "prompt": "add a red boat",
        "n": "1",
        "size": "256x256",
        "response_format": "b64_json",
    }
    assert [f["field"] for f in files] == ["image[]", "image[]", "mask"]
    assert files[0]["data"] == await anyio.Path(first.structured_content["images"][0]["path"]).read_bytes()
    assert files[1]["data"] == png_bytes(256, 256) and files[2]["data"] == mask_png(256, 256)
    assert [f["filename"] for f in files] == ["image-1.png", "image-2.png", "mask.png"]
    out = edited.structured_content
    assert out["model"] == EDIT_MODEL and out["cost_usd"] == pytest.approx(0.04)
    assert await anyio.Path(out["images"][0]["path"]).is_file() and (
        out["images"][0]["width"],
        out["images"][0]["height"],
    ) == (
        256,
        256,
    )
    assert any(isinstance(b, ImageContent) for b in edited.content)
    assert any(isinstance(b, ResourceLink) and b.uri == out["images"][0]["uri"] for b in edited.content)
    row = usage.structured_content["breakdown"][EDIT_MODEL]
    assert row["images"] == 1 and row["cost_usd"] == pytest.approx(0.04) and row["requests"] == 1
    assert not emulator.calls("images")[1:]  # the edit never went to /images/generations


async def test_inputs_a_model_cannot_take_are_refused_naming_one_that_can(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    config = audio_config(config_data)
    image, mask = b64(png_bytes(64, 64)), b64(mask_png(64, 64))
    async with in_memory_client(config) as client:
        masked = await client.call_tool(
            "generate_image", {"prompt": "x", "model": IMAGE_MODEL, "reference_image": image, "mask": mask}
        )
        two = await client.call_tool(
            "generate_image", {"prompt": "x", "model": IMAGE_MODEL, "reference_images": [image, image]}
        )
        four = await client.call_tool(
            "generate_image", {"prompt": "x", "model": EDIT_MODEL, "reference_images": [image] * 4}
        )
        lonely = await client.call_tool("generate_image", {"prompt": "x", "model": EDIT_MODEL, "mask": mask})
        jpeg_mask = await client.call_tool(
            "generate_image",
            {
                "prompt": "x",
                "model": EDIT_MODEL,
                "reference_images": [image],
                "mask": "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
            },
        )
    assert error_of(masked)["param"] == "mask" and f"Models that can: {EDIT_MODEL}" in error_of(masked)["message"]
    assert error_of(two)["param"] == "reference_images" and EDIT_MODEL in error_of(two)["message"]
    assert "at most 3" in error_of(four)["message"] and "No configured image model can" in error_of(four)["message"]
    assert error_of(lonely)["param"] == "mask"
    assert error_of(jpeg_mask)["param"] == "mask"
    assert not emulator.calls("image_edits") and not emulator.calls("images")


async def test_one_reference_image_on_an_inline_model_stays_inline(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    config = audio_config(config_data)
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "x", "model": IMAGE_MODEL, "reference_images": [b64(png_bytes(32, 32))]}
        )
    assert not result.is_error, result.content
    assert emulator.calls("images")[-1].json["image"] == b64(png_bytes(32, 32)) and not emulator.calls("image_edits")
