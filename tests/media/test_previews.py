"""The preview encoder on real pictures: always within the byte and pixel budget, in one encode, two at most.

The encodes are counted on Pillow itself (every `Image.save` call is recorded, then runs as usual), so what is
counted is the work really done, whatever path the encoder takes.
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from emulator.media import kind_png_bytes
from mcp_server.media.previews import _JITTER, _MCU, _STRIDE, make_preview


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _noise(rng: random.Random, width: int, height: int, levels: int = 256) -> Image.Image:
    img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    return img.point(lambda v: 255 if v > 127 else 0) if levels == 2 else img


def _text(width: int, height: int) -> Image.Image:
    rng = random.Random(3)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for y in range(0, height, 12):
        draw.text((2, y), "".join(rng.choice("abcdefghijklmnopqrstuvwxyz  ") for _ in range(width // 6)), fill="black")
    return img


def _hidden_from_sample(width: int, height: int) -> Image.Image:
    """Two-level noise everywhere except the MCUs the encoder's sample reads: its estimate sees a flat picture."""
    img = _noise(random.Random(4), width, height, levels=2)
    draw = ImageDraw.Draw(img)
    step = _MCU * _STRIDE
    for row in range(height // step):
        top = row * step + _JITTER[row % len(_JITTER)] * _MCU
        for column in range(width // step):
            left = column * step + _JITTER[(column + 2) % len(_JITTER)] * _MCU
            draw.rectangle((left, top, left + _MCU - 1, top + _MCU - 1), fill=(90, 120, 150))
    return img


def _transparent(width: int, height: int) -> Image.Image:
    img = Image.open(io.BytesIO(kind_png_bytes("photo", 1024, 1024))).resize((width, height)).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((width, height)))
    return img


def _rotated_jpeg(width: int, height: int) -> bytes:
    """A camera JPEG stored sideways with EXIF orientation 6: the preview must come out upright."""
    img = Image.open(io.BytesIO(kind_png_bytes("photo", 1024, 1024))).resize((width, height))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


PICTURES: dict[str, Callable[[], bytes]] = {
    "photo": lambda: kind_png_bytes("photo", 1024, 1024),
    "detailed": lambda: kind_png_bytes("detailed", 1024, 1024),
    "noise": lambda: _png(_noise(random.Random(1), 1024, 768)),
    "two-level-noise": lambda: _png(_noise(random.Random(2), 1024, 1024, levels=2)),
    "flat-1500": lambda: _png(Image.new("RGB", (1500, 1500), (200, 30, 30))),
    "text": lambda: _png(_text(1024, 1024)),
    "hidden-from-sample": lambda: _png(_hidden_from_sample(1024, 1024)),
    "transparent": lambda: _png(_transparent(1200, 900)),
    "palette": lambda: _png(_noise(random.Random(6), 1100, 1100).convert("P")),
    "strip": lambda: _png(_noise(random.Random(7), 100, 1500)),
    "rotated-jpeg": lambda: _rotated_jpeg(3000, 2000),
}


@pytest.fixture(scope="module")
def pictures() -> dict[str, bytes]:
    return {name: make() for name, make in PICTURES.items()}


def _check(data: bytes, preview: Any, budget: int, max_side: int) -> Image.Image:
    assert len(preview.data_b64) <= budget
    raw = base64.b64decode(preview.data_b64)
    img = Image.open(io.BytesIO(raw))
    img.load()
    assert img.size == (preview.width, preview.height) and max(img.size) <= max_side
    if preview.mime_type != "image/jpeg":  # it fitted as it was: passed through untouched
        assert raw == data and preview.mime_type == f"image/{img.format.lower()}"
        return img
    assert img.format == "JPEG"
    with Image.open(io.BytesIO(data)) as source:
        width, height = source.size
        if source.getexif().get(0x0112) == 6:
            width, height = height, width
    assert abs(img.width - img.height * width / height) <= max(1.5, 0.02 * img.width)  # the shape is kept
    return img


@pytest.mark.parametrize(("budget", "max_side"), [(10_000, 1024), (60_000, 1024), (200_000, 1024), (200_000, 512)])
@pytest.mark.parametrize("name", list(PICTURES))
def test_preview_always_fits_the_budget(pictures: dict[str, bytes], name: str, budget: int, max_side: int) -> None:
    preview = make_preview(pictures[name], budget, max_side)
    img = _check(pictures[name], preview, budget, max_side)
    if budget >= 200_000 and name not in ("strip", "two-level-noise", "hidden-from-sample"):
        assert max(img.size) >= 0.5 * max_side  # the default budget keeps ordinary pictures large
    if name == "rotated-jpeg":
        assert img.height > img.width  # turned upright


@pytest.fixture
def saves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """The size of every picture Pillow encodes while the test runs (Image.save instrumented, then run as is)."""
    recorded: list[tuple[int, int]] = []
    real_save = Image.Image.save

    def save(self: Image.Image, fp: Any, format: str | None = None, **params: Any) -> None:
        recorded.append(self.size)
        real_save(self, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", save)
    yield recorded


ONE_ENCODE = ["photo", "detailed", "noise", "two-level-noise", "flat-1500", "text", "rotated-jpeg"]


@pytest.mark.parametrize("budget", [100_000, 200_000])
@pytest.mark.parametrize("name", [*ONE_ENCODE, "hidden-from-sample"])
def test_one_encode_in_the_common_case_two_at_most(
    pictures: dict[str, bytes], saves: list[tuple[int, int]], name: str, budget: int
) -> None:
    """Samples (1/16 of the picture each) estimate; then one full encode, or two when the estimate was fooled."""
    preview = make_preview(pictures[name], budget, 1024)
    assert len(preview.data_b64) <= budget
    with Image.open(io.BytesIO(pictures[name])) as source:
        scale = min(1024 / max(source.size), 1.0)
        full_pixels = source.width * scale * source.height * scale  # the picture at preview size
    samples = [w * h for w, h in saves if w * h <= full_pixels / 16]
    encodes = [(w, h) for w, h in saves if w * h > full_pixels / 16]
    assert encodes[-1] == (preview.width, preview.height)
    assert len(encodes) == (2 if name == "hidden-from-sample" else 1), saves
    assert sum(samples) <= 0.75 * full_pixels, saves  # the estimate costs less than one encode


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    width=st.integers(40, 1400),
    height=st.integers(40, 1400),
    budget=st.integers(10_000, 400_000),
    max_side=st.integers(64, 1024),
)
def test_budget_holds_for_mixed_pictures(seed: int, width: int, height: int, budget: int, max_side: int) -> None:
    """Pictures made of patches of noise, flat colour and gradients, at any size, budget and side."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(rng.randrange(1, 8)):
        w, h = rng.randrange(1, width + 1), rng.randrange(1, height + 1)
        kind = rng.choice(("noise", "two-level", "gradient", "flat"))
        if kind == "gradient":
            patch = Image.linear_gradient("L").resize((w, h)).convert("RGB")
        elif kind == "flat":
            patch = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
        else:
            patch = _noise(rng, w, h, levels=2 if kind == "two-level" else 256)
        img.paste(patch, (rng.randrange(width - w + 1), rng.randrange(height - h + 1)))
    data = _png(img)
    preview = make_preview(data, budget, max_side)
    assert len(preview.data_b64) <= budget
    assert max(preview.width, preview.height) <= max_side
