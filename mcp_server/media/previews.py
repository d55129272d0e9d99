"""Inline previews: an image re-encoded to fit a byte and pixel budget, so n = 4 stays well under 1 MB.

Pillow is imported inside the functions, not at module load: a server that never makes an image
does not pay for it at start. The functions are blocking; callers run them in a worker thread.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from PIL.Image import Image

# Formats every MCP client renders inline; anything else is re-encoded.
_INLINE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_QUALITIES = (85, 72, 60, 45)
_ORIENTATION = 0x0112  # the EXIF tag
_MAX_PIXELS = 16384 * 16384  # refuse decompression bombs; the largest documented output is 8192 px a side


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
    from PIL import Image, ImageOps, UnidentifiedImageError

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
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, much faster for big images
            img.load()  # decode now, while the buffer is open
            if img.getexif().get(_ORIENTATION, 1) != 1:  # only then: exif_transpose copies the whole image
                img = ImageOps.exif_transpose(img)
            flat = _flatten(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc)) from None
    return _fit(flat, max_b64_bytes, max_side)


def _flatten(img: Image) -> Image:
    """RGB for JPEG: transparency is composited on white (a preview, not the file)."""
    from PIL import Image as PILImage

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _fit(img: Image, max_b64_bytes: int, max_side: int) -> Preview:
    from PIL import Image as PILImage

    side = max_side
    for _ in range(8):  # bounded: each round shrinks the long side by 30%
        scale = min(side / img.width, side / img.height, 1.0)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        # reducing_gap=1: a box reduction by the integer factor, then Lanczos: ~5x faster than Lanczos alone
        scaled = img.resize(size, PILImage.Resampling.LANCZOS, reducing_gap=1.0) if scale < 1.0 else img
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            scaled.save(buffer, "JPEG", quality=quality, optimize=True, progressive=True)
            if b64_size(buffer.tell()) <= max_b64_bytes:
                encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
                return Preview(data_b64=encoded, mime_type="image/jpeg", width=scaled.width, height=scaled.height)
        img = scaled
        side = max(32, int(max(scaled.size) * 0.7))
    raise UnreadableImage("could not fit a preview into the byte budget")
