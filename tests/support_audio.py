"""Test helpers for image edits and audio: models of every kind in a config, masks, tool-list sizes."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client
from PIL import Image

from tests.support import http_gateway, stdio_client, write_config
from tests.support_media import media_config

EDIT_MODEL = "editor"  # image_input = "edits": /images/edits, up to 3 images and a mask
SPEECH_MODEL = "tts"
TRANSCRIBE_MODEL = "whisper"


def audio_config(config: dict[str, Any], **media: Any) -> dict[str, Any]:
    """Every kind: media_config's image and video models plus an edits model, a speech and a transcription one."""
    media_config(config, **media)
    config["models"].update(
        {
            EDIT_MODEL: {
                "provider": "arkroute",
                "upstream": "gpt-image-1",
                "kind": "image",
                "image_input": "edits",
                "max_reference_images": 3,
                "response_format": "b64_json",
                "usd_per_image": 0.04,
            },
            SPEECH_MODEL: {
                "provider": "arkroute",
                "upstream": "gpt-4o-mini-tts",
                "kind": "speech",
                "voices": ["alloy", "nova"],
                "formats": ["wav", "mp3", "pcm"],
                "max_input_chars": 2000,
                "usd_per_mchar": 15.0,
            },
            TRANSCRIBE_MODEL: {
                "provider": "arkroute",
                "upstream": "whisper-1",
                "kind": "transcription",
                "usd_per_minute": 0.006,
            },
        }
    )
    return config


def mask_png(width: int, height: int) -> bytes:
    """An RGBA PNG, opaque but for a transparent square in the middle (the part to change)."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    image.paste((0, 0, 0, 0), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def tool_list(client: Client) -> tuple[set[str], int]:
    """The tool names an agent is offered, and the size in bytes of the tools/list result as JSON."""
    listed = await client.list_tools()
    text = json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))
    return {tool.name for tool in listed.tools}, len(text.encode("utf-8"))


@asynccontextmanager
async def served(config: dict[str, Any], tmp_path: Path, transport: str) -> AsyncIterator[Client]:
    """A client of genroute serving `config` as a subprocess, over "stdio" or "http"."""
    path = write_config(tmp_path / "genroute.toml", config)
    if transport == "stdio":
        async with stdio_client(path) as client:
            yield client
    else:
        with http_gateway(path) as gateway:
            async with Client(gateway.mcp_url) as client:
                yield client
