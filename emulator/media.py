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


# What the prompt asks for decides what the emulator draws, as with a real model: a prompt naming one of these
# kinds gets that kind of picture (deterministic: the same bytes in every process), any other the default above.
IMAGE_KINDS = ("photo", "detailed")


def image_kind(prompt: str) -> str | None:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    return next((kind for kind in IMAGE_KINDS if kind in words), None)


@functools.lru_cache(maxsize=8)
def kind_png_bytes(kind: str | None, width: int, height: int) -> bytes:
    if kind is None:
        return png_bytes(width, height)
    img = _photo(width, height) if kind == "photo" else _detailed(width, height)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@functools.lru_cache(maxsize=8)
def kind_png_b64(kind: str | None, width: int, height: int) -> str:
    if kind is None:
        return png_b64(width, height)
    return base64.b64encode(kind_png_bytes(kind, width, height)).decode("ascii")


def _random_plane(rng: random.Random, width: int, height: int) -> Image.Image:
    return Image.frombytes("L", (width, height), rng.randbytes(width * height))


def _photo(width: int, height: int) -> Image.Image:
    """Like a photograph: soft colour fields, blurred shapes with edges, mid-scale texture and sensor noise."""
    from PIL import ImageChops, ImageDraw, ImageFilter

    rng = random.Random(1)
    img = Image.frombytes("RGB", (5, 5), rng.randbytes(75)).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.random() * width, rng.random() * height
        r = (0.02 + 0.12 * rng.random()) * min(width, height)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r * (0.4 + rng.random()), x + r, y + r), fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(max(1.0, width / 512)))
    texture = _random_plane(rng, max(1, width // 6), max(1, height // 6)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    img = Image.blend(img, Image.merge("RGB", (texture,) * 3), 0.18)
    grain = Image.merge("RGB", [_random_plane(rng, width, height).point(lambda v: v >> 4) for _ in range(3)])
    return ImageChops.add(img, grain, offset=-8)


def _detailed(width: int, height: int) -> Image.Image:
    """Fine synthetic detail, the hard case for a preview encoder: a zone plate (rings whose frequency grows
    to the pixel pitch), a XOR texture and thin lines, each channel different."""
    from PIL import ImageDraw, ImageMath

    xs = Image.frombytes("L", (width, 1), bytes(x & 255 for x in range(width))).resize((width, height))
    ys = Image.frombytes("L", (1, height), bytes(y & 255 for y in range(height))).resize((width, height))
    cx, cy = width // 2, height // 2
    dx = Image.frombytes("I", (width, 1), b"".join(((x - cx) ** 2).to_bytes(4, "little") for x in range(width)))
    dy = Image.frombytes("I", (1, height), b"".join(((y - cy) ** 2).to_bytes(4, "little") for y in range(height)))
    scale = max(1, min(width, height) // 64)  # rings 4 px apart at the edges' midpoints, finer in the corners
    rings = ImageMath.lambda_eval(
        lambda a: a["convert"]((a["dx"] + a["dy"]) / scale & 255, "L"),
        dx=dx.resize((width, height)),
        dy=dy.resize((width, height)),
    )
    xor = ImageMath.lambda_eval(lambda a: a["convert"](a["x"] ^ a["y"], "L"), x=xs, y=ys)
    weave = ImageMath.lambda_eval(lambda a: a["convert"]((a["x"] * 7) ^ (a["y"] * 3) & 255, "L"), x=xs, y=ys)
    img = Image.merge("RGB", (rings, xor, weave))
    draw = ImageDraw.Draw(img)
    rng = random.Random(2)
    for _ in range(max(8, width // 8)):
        points = [(rng.random() * width, rng.random() * height) for _ in range(2)]
        draw.line(points, fill=tuple(rng.randrange(256) for _ in range(3)), width=1)
    return img


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
