"""Inline previews: an image re-encoded to fit a byte and pixel budget, so n = 4 stays well under 1 MB.

One decode (JPEG inputs decode straight at the reduced scale), one resize, and one JPEG encode in the common
case, two at most. The size and quality are chosen before the real encode: a sample of the picture (one
JPEG block in sixteen, taken on a jittered grid at the preview's own scale) is encoded at a few qualities, a
fraction of a full encode each, and scaled up to predict the full encode's bytes. Baseline JPEG with the standard
Huffman tables makes that prediction close: each block costs the same bits in the sample as in the whole. When
the prediction misses all the same, the second encode is sized from the worst case (random noise) and fits
whatever the picture holds. No progressive or optimised passes: 1.3-10x the encode's CPU for 2-7% fewer bytes
on photos and fine detail (more on smooth pictures, which fit anyway).

Pillow is imported inside the functions, not at module load: a server that never makes an image
does not pay for it at start. The functions are blocking; callers run them in a worker thread.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from PIL.Image import Image

# Formats every MCP client renders inline; anything else is re-encoded.
_INLINE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_ORIENTATION = 0x0112  # the EXIF tag
_MAX_PIXELS = 16384 * 16384  # refuse decompression bombs; the largest documented output is 8192 px a side

_TOP_QUALITY = 85
_MIN_QUALITY = 45  # below it a smaller picture looks better
_RESIZE_QUALITY = 60  # when no quality fits at full size, shrink so that this one does
_FALLBACK_QUALITY = 50
# Bytes per 16x16 block area (one 4:2:0 MCU, 256 px) of the worst input measured, random two-level RGB noise (the
# most a pixel can carry: 0.946 bytes/px at quality 85, 0.564 at 50), with 1.5x headroom: no picture of that many
# blocks encodes larger (random equal-magnitude DCT coefficients and Gaussian noise measured 0.53-0.83 at 85).
_WORST_BYTES_PER_PX = {_TOP_QUALITY: 1.42, _FALLBACK_QUALITY: 0.85}
_HEADER = 631  # a baseline JPEG's bytes before the first block: JFIF, quantisation and Huffman tables
_MCU = 16  # pixels a side of a JPEG MCU with 4:2:0 chroma: the sample's tiles are whole MCUs
_STRIDE = 4  # one MCU in four each way goes into the sample: 1/16 of the picture
_JITTER = (1, 3, 0, 2)  # which MCU of each four: varies, so a grid every 64 px cannot alias with the sample
_AIM = 0.95  # the first encode aims this far under the budget: the sample predicts 0-9% high


class ImageInfo(BaseModel):
    width: int
    height: int


class Preview(BaseModel):
    data_b64: str
    mime_type: str
    width: int
    height: int


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can read (or are absurdly large)."""


def b64_size(raw_bytes: int) -> int:
    return 4 * ((raw_bytes + 2) // 3)


def image_info(data: bytes) -> ImageInfo:
    """Width and height from the header only (no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc)) from None
    return ImageInfo(width=width, height=height)


def make_preview(data: bytes, max_b64_bytes: int, max_side: int) -> Preview:
    """The image itself when it already fits, else a JPEG scaled to `max_side` and compressed to the budget."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > _MAX_PIXELS:
                raise UnreadableImage(f"{width}x{height} is too large to preview")
            mime = _INLINE_FORMATS.get(img.format or "")
            if mime and max(width, height) <= max_side and b64_size(len(data)) <= max_b64_bytes:
                return Preview(
                    data_b64=base64.b64encode(data).decode("ascii"), mime_type=mime, width=width, height=height
                )
            scaled = _decoded(img, max_side)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc)) from None
    del img  # the full-size pixels go now, before the encode: n images in parallel hold less at once
    encoded, scaled = _encode_within(scaled, 3 * (max_b64_bytes // 4))
    return Preview(
        data_b64=base64.b64encode(encoded).decode("ascii"),
        mime_type="image/jpeg",
        width=scaled.width,
        height=scaled.height,
    )


def _decoded(img: Image, max_side: int) -> Image:
    """The pixels, upright, in RGB, scaled to fit `max_side`: one decode, one resize."""
    from PIL import ImageOps

    img.draft("RGB", _fit_side(img.size, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, much faster
    img.load()
    if img.getexif().get(_ORIENTATION, 1) != 1:  # only then: exif_transpose copies the whole image
        img = ImageOps.exif_transpose(img)
    flat = _flatten(img)
    size = _fit_side(flat.size, max_side)
    return _resize(flat, size)


def _fit_side(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = min(max_side / width, max_side / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _flatten(img: Image) -> Image:
    """RGB for JPEG: transparency is composited on white (a preview, not the file)."""
    from PIL import Image as PILImage

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _resize(img: Image, size: tuple[int, int]) -> Image:
    from PIL import Image as PILImage

    if img.size == size:
        return img
    # reducing_gap=1: a box reduction by the integer factor, then Hamming (a 2-tap window: half Lanczos' time)
    return img.resize(size, PILImage.Resampling.HAMMING, reducing_gap=1.0)


def _jpeg(img: Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality, subsampling=2)  # baseline, standard tables, 4:2:0 chroma
    return buffer.getvalue()


def _scaled_by(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _blocks(size: tuple[int, int]) -> int:
    return math.ceil(size[0] / _MCU) * math.ceil(size[1] / _MCU)


def _worst_case_fits(size: tuple[int, int], quality: int, budget: int) -> bool:
    return _blocks(size) * _MCU * _MCU * _WORST_BYTES_PER_PX[quality] + _HEADER <= budget


def _encode_within(img: Image, budget: int) -> tuple[bytes, Image]:
    """JPEG bytes of at most `budget`, and the picture they encode: one encode, or two when the estimate missed."""
    if _worst_case_fits(img.size, _TOP_QUALITY, budget):  # small enough that nothing can go over
        return _jpeg(img, _TOP_QUALITY), img
    target, base = _AIM * budget, img
    for _ in range(3):  # sizes tried on samples; each shrink is measured, the next one corrects it
        estimate = _Estimate(img)
        quality = estimate.best_quality(target)
        if quality is not None or estimate.sample is None:
            break
        shrink = math.sqrt(target / estimate.bytes_at(_RESIZE_QUALITY))  # bytes ~ pixels: a first guess
        img = _resize(base, _scaled_by(img.size, shrink))
    data = _jpeg(img, quality or _MIN_QUALITY)
    if len(data) <= budget:
        return data, img
    # The estimate missed (content the sample did not see): the size where even the worst case fits.
    small = _resize(img, _worst_case_size(img.size, budget))
    return _jpeg(small, _FALLBACK_QUALITY), small


def _worst_case_size(size: tuple[int, int], budget: int) -> tuple[int, int]:
    room = max(budget - _HEADER, 0) / _WORST_BYTES_PER_PX[_FALLBACK_QUALITY]
    scale = min(1.0, math.sqrt(room / (size[0] * size[1])))
    for _ in range(30):  # a few steps down past the rounding of sides up to whole MCUs
        scaled = _scaled_by(size, scale)
        if _worst_case_fits(scaled, _FALLBACK_QUALITY, budget):
            return scaled
        scale *= 0.9
    raise UnreadableImage(f"a {budget} byte budget cannot hold a preview")


class _Estimate:
    """The full encode's bytes at a quality, predicted from a sample of the picture's MCUs."""

    def __init__(self, img: Image) -> None:
        self.sample = _sample(img)
        self.ratio = _blocks(img.size) / _blocks(self.sample.size) if self.sample is not None else 1.0
        self._bytes: dict[int, float] = {}

    def bytes_at(self, quality: int) -> float:
        if quality not in self._bytes:
            if self.sample is None:
                return math.inf
            self._bytes[quality] = (len(_jpeg(self.sample, quality)) - _HEADER) * self.ratio + _HEADER
        return self._bytes[quality]

    def best_quality(self, target: float) -> int | None:
        """The highest quality predicted within `target`, None if none is; bytes fall as quality does.

        The common case takes one sample encode; else the bracket [_MIN_QUALITY, _TOP_QUALITY] is narrowed by
        interpolating log(bytes) over quality (regula falsi), 2-4 more.
        """
        if self.sample is None:
            return _TOP_QUALITY  # too small to sample: encode, and fall back if it misses
        low, high = _MIN_QUALITY, _TOP_QUALITY
        if self.bytes_at(high) <= target:
            return high
        if self.bytes_at(low) > target:
            return None
        goal = math.log(target)
        while high - low > 1:  # bounded: the bracket shrinks by at least one every round
            below, above = math.log(self.bytes_at(low)), math.log(self.bytes_at(high))
            guess = low + (goal - below) * (high - low) / (above - below)
            middle = min(high - 1, max(low + 1, round(guess)))
            if self.bytes_at(middle) <= target:
                low = middle
            else:
                high = middle
        return low


def _sample(img: Image) -> Image | None:
    """One MCU in `_STRIDE` each way, jittered, packed edge to edge; None when the picture is too small."""
    from PIL import Image as PILImage

    step = _MCU * _STRIDE
    columns, rows = img.width // step, img.height // step
    if columns * rows < 4:  # under 128x128 px, or a strip under 64 px wide: too few MCUs to go by
        return None
    band = PILImage.new("RGB", (img.width, rows * _MCU))
    for row in range(rows):
        top = row * step + _JITTER[row % len(_JITTER)] * _MCU
        band.paste(img.crop((0, top, img.width, top + _MCU)), (0, row * _MCU))
    sample = PILImage.new("RGB", (columns * _MCU, rows * _MCU))
    for column in range(columns):
        left = column * step + _JITTER[(column + 2) % len(_JITTER)] * _MCU
        sample.paste(band.crop((left, 0, left + _MCU, band.height)), (column * _MCU, 0))
    return sample
