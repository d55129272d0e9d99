"""Images a chat call carries, made ready for the upstream: each resolved, checked, downscaled, sent as a data: URL.

A source is what `reference_image` takes (base64, a data: URL, a public http(s) URL, a file in input_dir: the same
guards, see reference.py and fetch.py) or a `media://` id of a file genroute saved. An image larger than the
model's `max_image_px` on its long edge is scaled down and re-encoded as JPEG in a worker thread, so the event
loop never decodes pixels and the upstream never bills for pixels it would throw away.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from mcp_server.errors import invalid_argument
from mcp_server.media.fetch import GuardedFetcher
from mcp_server.media.files import IMAGE_EXTENSIONS, MIME_TYPES, sniff_extension
from mcp_server.media.previews import UnreadableImage, _decoded
from mcp_server.media.reference import ReferenceImage, load_reference_image
from mcp_server.media.registry import URI_SCHEME, MediaRegistry
from mcp_server.providers.messages import ChatMessage, ImagePart, ImageUrl, ImageUrlPart

MAX_IMAGES = 16  # per call: each may cost thousands of input tokens
JPEG_QUALITY = 90
_MAX_PIXELS = 16384 * 16384  # a decompression bomb is refused before its pixels are decoded
_limiter = anyio.CapacityLimiter(2)  # at most two images decode at once (a 4096x4096 one holds ~50 MB)

Param = Callable[[int, int], str]  # (message index, part index) -> the argument to name in an error


def count_images(messages: list[ChatMessage]) -> int:
    return sum(len(message.images()) for message in messages)


def check_count(images: int) -> None:
    if images > MAX_IMAGES:
        raise invalid_argument("images", f"A call carries at most {MAX_IMAGES} images; this one has {images}.")


@dataclass(frozen=True)
class ImageSources:
    """Where image sources are read from: the saved media, the guarded fetcher, input_dir."""

    registry: MediaRegistry
    fetcher: GuardedFetcher
    input_dir: Path | None
    max_bytes: int

    async def load(self, value: str, param: str) -> ReferenceImage:
        if value.strip()[: len(URI_SCHEME)].lower() == URI_SCHEME:
            return await self._saved(value.strip()[len(URI_SCHEME) :], param)
        return await load_reference_image(
            value, param=param, input_dir=self.input_dir, fetcher=self.fetcher, max_bytes=self.max_bytes
        )

    async def _saved(self, media_id: str, param: str) -> ReferenceImage:
        item = await self.registry.get(media_id)
        if item is None or not item.mime_type.startswith("image/"):
            raise invalid_argument(
                param,
                f"{param}: there is no saved image media://{media_id}. Ids come from generate_image results.",
                code="media_not_found",
            )
        if item.bytes > self.max_bytes:
            raise invalid_argument(
                param, f"{param} is larger than {self.max_bytes} bytes ([media] reference_max_bytes)."
            )
        _, data = await self.registry.read(media_id, self.max_bytes)
        return ReferenceImage(data=data, mime_type=item.mime_type)


async def prepare_images(
    messages: list[ChatMessage], sources: ImageSources, max_px: int, param: Param | None = None
) -> list[ChatMessage]:
    """`messages` with every image part replaced by an `image_url` part holding a data: URL that fits `max_px`."""
    name = param or (lambda i, j: f"messages[{i}].content[{j}]")
    prepared: list[ChatMessage] = []
    for i, message in enumerate(messages):
        if not message.images() or isinstance(message.content, str) or message.content is None:
            prepared.append(message)
            continue
        parts = list(message.content)
        for j, part in enumerate(parts):
            if isinstance(part, ImagePart | ImageUrlPart):
                source = part.image if isinstance(part, ImagePart) else part.image_url.url
                detail = part.image_url.detail if isinstance(part, ImageUrlPart) else None
                url = await data_url(await sources.load(source, name(i, j)), max_px, name(i, j))
                parts[j] = ImageUrlPart(type="image_url", image_url=ImageUrl(url=url, detail=detail))
        prepared.append(message.model_copy(update={"content": parts}))
    return prepared


async def data_url(image: ReferenceImage, max_px: int, param: str) -> str:
    try:
        data, mime = await anyio.to_thread.run_sync(fit_image, image.data, max_px, limiter=_limiter)
    except UnreadableImage as exc:
        raise invalid_argument(param, f"{param} could not be decoded as an image ({exc}).") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def fit_image(data: bytes, max_px: int) -> tuple[bytes, str]:
    """The image as it is when its long edge fits `max_px`, else scaled down to it as a JPEG. Blocking."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > _MAX_PIXELS:
                raise UnreadableImage(f"{width}x{height} pixels is more than genroute decodes")
            extension = sniff_extension(data[:16])
            if max(width, height) <= max_px and extension in IMAGE_EXTENSIONS:
                return data, MIME_TYPES[extension]
            scaled = _decoded(img, max_px)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc) or type(exc).__name__) from None
    out = io.BytesIO()
    scaled.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), "image/jpeg"
