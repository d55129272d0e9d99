"""generate_image through the real client: files, previews within budget, links, full output, validation, errors."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from mcp_types import ImageContent, ResourceLink
from PIL import Image

from emulator import Emulator
from emulator.media import kind_png_bytes, png_bytes
from tests.support import in_memory_client, stdio_client, write_config
from tests.support_media import B64_IMAGE_MODEL, IMAGE_MODEL, file_bytes, media_config, media_files, png_b64

pytestmark = pytest.mark.anyio


@pytest.fixture
def config(config_data: dict[str, Any]) -> dict[str, Any]:
    return media_config(config_data)


def blocks(result: Any, kind: type) -> list[Any]:
    return [block for block in result.content if isinstance(block, kind)]


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    return result.structured_content["error"]


async def test_url_answer_is_downloaded_saved_previewed_and_linked(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": IMAGE_MODEL, "n": 2})
        assert not result.is_error, result.content
        out = result.structured_content
        full = await client.read_resource(out["images"][0]["uri"])

    assert out["model"] == IMAGE_MODEL and out["provider"] == "arkroute"
    assert out["revised_prompt"] == "a lighthouse"
    assert out["cost_usd"] == pytest.approx(0.04)
    sent = emulator.calls("images")[-1]
    assert sent.json == {"model": "nano-banana-2", "prompt": "a lighthouse", "n": 2}
    assert sent.headers["idempotency-key"].startswith("genroute-")
    downloads = emulator.calls("files")
    assert len(downloads) == 2

    expected = png_bytes(1024, 1024)
    output_dir = str(Path(config["server"]["output_dir"]))
    for image in out["images"]:
        assert image["path"] == f"{output_dir}/{image['id']}" and file_bytes(image["path"]) == expected
        assert image["uri"] == f"media://{image['id']}"
        assert image["url"].startswith(emulator.base_url + "/files/")
        assert (image["width"], image["height"], image["mime_type"], image["bytes"]) == (
            1024,
            1024,
            "image/png",
            len(expected),
        )
    # per image: an inline preview, then a link to the full file; the text says where the files went
    kinds = [type(block).__name__ for block in result.content]
    assert kinds == ["TextContent", "ImageContent", "ResourceLink", "ImageContent", "ResourceLink"]
    links = blocks(result, ResourceLink)
    assert [str(link.uri) for link in links] == [image["uri"] for image in out["images"]]
    assert links[0].mime_type == "image/png" and links[0].size == len(expected)
    assert all(image["path"] in result.content[0].text for image in out["images"])
    contents = full.contents[0]
    assert contents.mime_type == "image/png" and base64.b64decode(contents.blob) == expected


async def test_b64_answer_is_saved_as_sent(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "x", "model": B64_IMAGE_MODEL, "size": "512x512", "output": "link"}
        )
    assert not result.is_error, result.content
    image = result.structured_content["images"][0]
    assert file_bytes(image["path"]) == png_bytes(512, 512)
    assert image["url"] is None
    assert emulator.calls("images")[-1].json["response_format"] == "b64_json"
    assert emulator.calls("files") == []
    assert blocks(result, ImageContent) == []  # output="link": no image bytes inline
    assert len(blocks(result, ResourceLink)) == 1


async def test_preview_budget_holds_for_four_4096_px_images(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "big", "model": IMAGE_MODEL, "n": 4, "size": "4096x4096"}
        )
        assert not result.is_error, result.content
        full = await client.read_resource(result.structured_content["images"][3]["uri"])

    previews = blocks(result, ImageContent)
    assert len(previews) == 4
    for preview in previews:
        assert len(preview.data) <= 200_000
        with Image.open(io.BytesIO(base64.b64decode(preview.data))) as img:
            assert max(img.size) <= 1024 and img.format == preview.mime_type.split("/")[1].upper()
    whole = len(result.model_dump_json(by_alias=True))
    assert whole < 1_000_000, f"tool result is {whole} bytes"
    # the files and the resource are the full upstream images, not the previews
    for image in result.structured_content["images"]:
        assert (image["width"], image["height"]) == (4096, 4096)
        assert file_bytes(image["path"]) == png_bytes(4096, 4096)
    assert base64.b64decode(full.contents[0].blob) == png_bytes(4096, 4096)


async def test_preview_result_stays_under_1_mb_for_ten_images(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """n = 10 (the largest max_n): each preview gets a tenth of the 800 KB all previews may take together
    (at 200 KB each, these ten made a 1.4 MB result)."""
    config["models"][IMAGE_MODEL]["max_n"] = 10
    arguments = {"prompt": "many", "model": IMAGE_MODEL, "n": 10, "size": "1024x1536"}
    async with stdio_client(write_config(tmp_path / "genroute.toml", config)) as client:
        result = await client.call_tool("generate_image", arguments)
    assert not result.is_error, result.content
    whole = len(result.model_dump_json(by_alias=True))
    assert whole < 1_000_000, f"tool result is {whole} bytes"
    previews = blocks(result, ImageContent)
    assert len(previews) == 10 and all(len(preview.data) <= 80_000 for preview in previews)
    for preview in previews:
        with Image.open(io.BytesIO(base64.b64decode(preview.data))) as img:
            assert img.size[0] > 64  # still a picture, not a thumbnail of a thumbnail


@pytest.mark.parametrize("kind", ["photo", "detailed"])
async def test_the_prompt_picks_the_picture_and_its_preview_fits(
    config: dict[str, Any], emulator: Emulator, kind: str
) -> None:
    """The emulator draws what the prompt names (the bench's test pictures); each becomes a JPEG preview in budget."""
    async with in_memory_client(config) as client:
        arguments = {"prompt": f"a {kind} of a harbour", "model": IMAGE_MODEL, "size": "1024x1536"}
        result = await client.call_tool("generate_image", arguments)
    assert not result.is_error, result.content
    image = result.structured_content["images"][0]
    assert file_bytes(image["path"]) == kind_png_bytes(kind, 1024, 1536)  # 1.2-3 MB: no pass-through
    (preview,) = blocks(result, ImageContent)
    assert preview.mime_type == "image/jpeg" and len(preview.data) <= 200_000
    with Image.open(io.BytesIO(base64.b64decode(preview.data))) as img:
        assert img.format == "JPEG" and max(img.size) <= 1024 and img.height > img.width


async def test_full_output_inlines_small_images_and_refuses_big_ones(
    config: dict[str, Any], emulator: Emulator
) -> None:
    async with in_memory_client(config) as client:
        small = await client.call_tool(
            "generate_image", {"prompt": "s", "model": IMAGE_MODEL, "size": "256x256", "output": "full"}
        )
        big = await client.call_tool(
            "generate_image", {"prompt": "b", "model": IMAGE_MODEL, "size": "4096x4096", "output": "full"}
        )
    assert not small.is_error, small.content
    inline = blocks(small, ImageContent)
    assert len(inline) == 1 and base64.b64decode(inline[0].data) == png_bytes(256, 256)

    error = error_of(big)
    assert error["code"] == "too_large_for_inline" and error["param"] == "output"
    saved = [p for p in media_files(config) if p.read_bytes() == png_bytes(4096, 4096)]
    assert len(saved) == 1 and str(saved[0]) in error["message"]  # paid for, so kept and named
    assert 'output="preview"' in error["message"]


async def test_reference_image_forms_reach_upstream_as_base64(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "cat.png").write_bytes(png_bytes(48, 48))
    config["server"]["input_dir"] = str(inputs)
    forms = [png_b64(), f"data:image/png;base64,{png_b64()}", "cat.png", str(inputs / "cat.png")]
    async with in_memory_client(config) as client:
        for form in forms:
            arguments = {"prompt": "p", "model": IMAGE_MODEL, "reference_image": form}
            result = await client.call_tool("generate_image", arguments)
            assert not result.is_error, result.content
    sent = [call.json["image"] for call in emulator.calls("images")]
    assert sent == [png_b64(), png_b64(), png_b64(48, 48), png_b64(48, 48)]


@pytest.mark.parametrize(
    ("reference", "needs"),
    [
        ("../outside.png", "outside the input folder"),
        ("/etc/passwd", "outside the input folder"),
        ("file:///etc/passwd", "file: URLs"),
        ("bm90IGFuIGltYWdl", "must be base64 image data"),
        ("data:text/plain;base64,aGVsbG8=", "does not hold"),
        ("missing.png", "no file"),
    ],
)
async def test_reference_image_never_reads_arbitrary_paths(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path, reference: str, needs: str
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (tmp_path / "outside.png").write_bytes(png_bytes(16, 16))
    config["server"]["input_dir"] = str(inputs)
    async with in_memory_client(config) as client:
        arguments = {"prompt": "p", "model": IMAGE_MODEL, "reference_image": reference}
        result = await client.call_tool("generate_image", arguments)
    error = error_of(result)
    assert error["param"] == "reference_image" and needs in error["message"]
    assert emulator.calls("images") == []


async def test_paths_are_refused_without_an_input_dir(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_image", {"prompt": "p", "reference_image": "/etc/hostname.png"})
    error = error_of(result)
    assert "no input folder is configured" in error["message"] and "input_dir" in error["message"]
    assert emulator.calls("images") == []


@pytest.mark.parametrize(
    ("arguments", "param", "needs"),
    [
        ({"prompt": "  "}, "prompt", "empty"),
        ({"prompt": "x" * 32_001}, "prompt", "32000"),
        ({"prompt": "x", "n": 5}, "n", "from 1 to 4"),
        ({"prompt": "x", "n": 0}, "n", "from 1 to 4"),
        ({"prompt": "x", "size": "999x999"}, "size", "256x256, 1024x1024"),
        ({"prompt": "x", "model": "kling"}, "model", "video model"),
        ({"prompt": "x", "model": B64_IMAGE_MODEL, "size": "big"}, "size", "1024x1024"),
    ],
)
async def test_bad_arguments_are_refused_before_upstream(
    config: dict[str, Any], emulator: Emulator, arguments: dict[str, Any], param: str, needs: str
) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_image", {"model": IMAGE_MODEL, **arguments})
    error = error_of(result)
    assert error["param"] == param and needs in error["message"]
    assert emulator.calls("images") == [] and media_files(config) == []


async def test_upstream_refusal_is_reported_with_its_error(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("images", status=402, body={"error": {"message": "Out of credits", "code": "no_credits"}})
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_image", {"prompt": "p", "model": IMAGE_MODEL})
    error = error_of(result)
    assert error["status"] == 402 and error["code"] == "no_credits"
    assert "arkroute" in error["message"] and "Out of credits" in error["message"]
    assert "test-key" not in json.dumps(result.model_dump(mode="json"))
    assert media_files(config) == []


async def test_image_round_trip_over_stdio(config: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    path = write_config(tmp_path / "genroute.toml", config)
    async with stdio_client(path) as client:
        result = await client.call_tool("generate_image", {"prompt": "stdio", "model": IMAGE_MODEL, "n": 2})
        assert not result.is_error, result.content
        uri = result.structured_content["images"][1]["uri"]
        full = await client.read_resource(uri)
    assert len(blocks(result, ImageContent)) == 2 and len(blocks(result, ResourceLink)) == 2
    assert base64.b64decode(full.contents[0].blob) == png_bytes(1024, 1024)
    assert file_bytes(result.structured_content["images"][1]["path"]) == png_bytes(1024, 1024)
