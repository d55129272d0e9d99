"""Pure media side of the provider emulator: generated PNGs, the MP4 stand-in and video task timing.

No server state here. PNGs are real (Pillow) so the gateway's media handling (decode, size checks,
thumbnails, storage) runs on genuine bytes; they are generated once per size and cached because a
4096x4096 render costs most of a second.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import random
import re
import struct
from dataclasses import dataclass
from typing import Any

from PIL import Image

MAX_SIDE = 8192
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")
_ASPECT = re.compile(r"^\d{1,3}:\d{1,3}$")


def parse_size(size: str) -> tuple[int, int]:
    """'WxH' -> (W, H); each side 1..8192. ValueError says what is allowed."""
    match = _SIZE.match(size)
    if not match:
        raise ValueError(f"Invalid 'size' {size!r}: expected 'WIDTHxHEIGHT', e.g. '1024x1024'.")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"Invalid 'size' {size!r}: each side must be between 1 and {MAX_SIDE}.")
    return width, height


def valid_aspect_ratio(value: str) -> bool:
    return bool(_ASPECT.match(value))


def decode_image_b64(data: str) -> tuple[int, int]:
    """Size of a base64 (or data: URL) image; ValueError if it is not an image Pillow can read."""
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        raw = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            img.verify()
            return img.size
    except (binascii.Error, ValueError, OSError, SyntaxError) as exc:
        raise ValueError("Invalid 'image': expected a base64-encoded PNG, JPEG or WebP image.") from exc


@functools.lru_cache(maxsize=16)
def png_bytes(width: int, height: int) -> bytes:
    """A real RGB PNG: two gradients (cheap to compress) plus a band of noise every 32 rows (not trivially)."""
    gradient = Image.linear_gradient("L")  # 256x256, black to white top to bottom
    red = gradient.rotate(90).resize((width, height), Image.Resampling.NEAREST)
    green = gradient.resize((width, height), Image.Resampling.NEAREST)
    noise = Image.effect_noise((width, max(1, height // 32)), 64).resize((width, height), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    Image.merge("RGB", (red, green, noise)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@functools.lru_cache(maxsize=16)
def png_b64(width: int, height: int) -> str:
    return base64.b64encode(png_bytes(width, height)).decode("ascii")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _mp4_blob() -> bytes:
    """A few KB that start like an MP4 (ftyp box, then free and mdat boxes); not a playable video."""
    ftyp = _box(b"ftyp", b"mp42" + b"\x00\x00\x00\x00" + b"mp42isom")  # 24 bytes: 00 00 00 18 'ftyp'
    filler = random.Random(4).randbytes(4096)  # fixed seed: the blob is the same in every process
    return ftyp + _box(b"free", b"genroute emulator") + _box(b"mdat", filler)


MP4 = _mp4_blob()


@dataclass
class VideoTask:
    """An ArkRoute video job; its state is a function of monotonic time since submission."""

    task_id: str
    model: str
    duration: float
    run_s: float
    started: float
    finished: bool = False
    error: str | None = None

    def progress(self, now: float) -> int:
        if self.run_s <= 0:
            return 99
        return max(0, min(99, int(100 * (now - self.started) / self.run_s)))

    def due(self, now: float) -> bool:
        return now - self.started >= self.run_s

    def body(self, now: float, base_url: str) -> dict[str, Any]:
        """GET /v1/video/status/{task_id} as ArkRoute documents it (processing / completed / failed)."""
        if not self.finished:
            progress = self.progress(now)
            return {"task_id": self.task_id, "status": "processing", "progress": progress, "model": self.model}
        if self.error is not None:
            return {
                "task_id": self.task_id,
                "status": "failed",
                "error": {"message": self.error, "code": "generation_failed"},
                "model": self.model,
            }
        return {
            "task_id": self.task_id,
            "status": "completed",
            "video_url": f"{base_url}/files/{self.task_id}.mp4",
            "duration": self.duration,
            "model": self.model,
        }
