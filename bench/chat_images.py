"""What a 1 MB image adds to a chat_complete call inside genroute: decode, downscale, re-encode, base64.

Times `prepare_images` (the tool's own path: the file read from input_dir, the size check, the worker-thread
resize, the data: URL) for a ~1 MB JPEG photo-like image and a ~1 MB PNG, at the default max_image_px (2048)
and at 1024, plus the same path for a small image that is sent as it is. No upstream call: only genroute's share.
Run: python -m bench.chat_images
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from emulator.media import png_bytes
from mcp_server.media.chat_images import ImageSources, prepare_images
from mcp_server.media.fetch import GuardedFetcher
from mcp_server.media.registry import MediaRegistry
from mcp_server.providers.messages import ChatMessage, ImagePart, TextPart

REPEAT = 7


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that hardly compresses (Gaussian noise), so a small picture still weighs about a megabyte."""
    from PIL import Image

    out = io.BytesIO()
    Image.merge("RGB", [Image.effect_noise((width, height), 40 + 10 * i) for i in range(3)]).save(out, format="PNG")
    return out.getvalue()


def photo_jpeg(width: int, height: int) -> bytes:
    """A JPEG with photo-like detail (the emulator's gradient-and-noise picture), quality 92."""
    from PIL import Image

    with Image.open(io.BytesIO(png_bytes(width, height))) as img:
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=92)
    return out.getvalue()


async def time_one(sources: ImageSources, name: str, max_px: int) -> tuple[float, int]:
    message = ChatMessage(role="user", content=[TextPart(type="text", text="?"), ImagePart(type="image", image=name)])
    timings: list[float] = []
    sent = 0
    for _ in range(REPEAT):
        started = time.perf_counter()
        prepared = await prepare_images([message], sources, max_px)
        timings.append(time.perf_counter() - started)
        sent = len(prepared[0].model_dump_json())
    return statistics.median(timings) * 1000, sent


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = {
            "photo.jpg": photo_jpeg(2600, 1700),  # ~1 MB, larger than 2048: scaled at both settings
            "noise.png": noisy_png(620, 620),  # ~1 MB, under 1024: sent as it is at both
            "small.png": png_bytes(512, 512),
        }
        for name, data in images.items():
            (root / name).write_bytes(data)
        fetcher = GuardedFetcher(max_bytes=20_000_000, timeout_s=5)
        sources = ImageSources(MediaRegistry(root / "media"), fetcher, root, 20_000_000)
        for name, data in images.items():
            for max_px in (2048, 1024):
                median_ms, sent = await time_one(sources, name, max_px)
                print(
                    f"{name} ({len(data) / 1e6:.2f} MB) max_image_px={max_px}: {median_ms:.1f} ms median over "
                    f"{REPEAT} runs, {sent / 1e6:.2f} MB in the request body"
                )
        await fetcher.aclose()


if __name__ == "__main__":
    anyio.run(main)
