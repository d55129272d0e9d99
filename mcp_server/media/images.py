"""From an upstream image answer to saved files: decode or download each image, check it, save it.

Both upstream forms are taken: `b64_json` inline, or a `url` fetched over the provider's own pooled
client (size-capped, time-bounded). The type comes from the bytes, the name from time + model + id.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
from pydantic import BaseModel

from mcp_server.config import MediaConfig
from mcp_server.errors import GatewayError, MalformedAnswer, TimedOut
from mcp_server.media.files import IMAGE_EXTENSIONS, sniff_extension
from mcp_server.media.previews import Preview, UnreadableImage, image_info, make_preview
from mcp_server.media.registry import MediaItem, MediaRegistry
from mcp_server.providers.base import GeneratedImage, ImageResult, ProviderAdapter


class StoredImage(BaseModel):
    item: MediaItem
    width: int
    height: int
    url: str | None = None  # the upstream's URL, when it answered with one
    data: bytes  # kept for the inline preview or full image; never serialised into results


async def store_images(
    result: ImageResult, *, adapter: ProviderAdapter, registry: MediaRegistry, model_id: str, config: MediaConfig
) -> list[StoredImage]:
    stored: list[StoredImage | None] = [None] * len(result.images)

    async def one(index: int, image: GeneratedImage) -> None:
        data = await _image_bytes(image, adapter, config)
        extension = sniff_extension(data[:16])
        if extension not in IMAGE_EXTENSIONS:
            raise _unreadable(adapter.name, "an image that is not PNG, JPEG, WebP or GIF")
        try:
            info = await anyio.to_thread.run_sync(image_info, data)
        except UnreadableImage:
            raise _unreadable(adapter.name, "an image that cannot be decoded") from None
        item = await registry.save(data, model_id, extension)
        stored[index] = StoredImage(item=item, width=info.width, height=info.height, url=image.url, data=data)

    await _each(one, result.images)
    return [image for image in stored if image is not None]


async def _image_bytes(image: GeneratedImage, adapter: ProviderAdapter, config: MediaConfig) -> bytes:
    if image.b64_json:
        payload = image.b64_json.partition(",")[2] if image.b64_json.startswith("data:") else image.b64_json
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _unreadable(adapter.name, "b64_json that is not valid base64") from None
    assert image.url is not None  # the adapter refuses answers with neither
    try:
        with anyio.fail_after(config.download_timeout_s):
            return await adapter.download(image.url, config.max_image_bytes)
    except TimeoutError:
        raise TimedOut(
            f"Downloading the generated image from provider '{adapter.name}' took longer than "
            f"{config.download_timeout_s:g} s ([media] download_timeout_s).",
            code="download_timeout",
        ) from None


async def previews(images: list[StoredImage], config: MediaConfig) -> list[Preview | None]:
    """One preview per image (None where Pillow cannot make one), in worker threads, one per CPU at most.

    The bound matters for memory: a decoded 4096x4096 image is about 50 MB.
    """
    made: list[Preview | None] = [None] * len(images)
    limiter = anyio.CapacityLimiter(max(1, min(4, os.cpu_count() or 1)))

    async def one(index: int, image: StoredImage) -> None:
        try:
            made[index] = await anyio.to_thread.run_sync(
                make_preview, image.data, config.preview_max_bytes, config.preview_max_side, limiter=limiter
            )
        except UnreadableImage:
            made[index] = None

    await _each(one, images)
    return made


async def _each(fn: Callable[[int, Any], Awaitable[None]], items: Sequence[Any]) -> None:
    """`fn(index, item)` for every item concurrently; a failure surfaces as itself, not as an ExceptionGroup."""
    try:
        async with anyio.create_task_group() as group:
            for index, item in enumerate(items):
                group.start_soon(fn, index, item)
    except BaseExceptionGroup as group:
        errors = group.subgroup(GatewayError)
        if errors is not None:
            raise _leaves(errors)[0] from None
        raise


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def _unreadable(provider: str, what: str) -> MalformedAnswer:
    return MalformedAnswer(provider, f"sent {what}.")
