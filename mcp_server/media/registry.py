"""Media ids -> files: what `media://{id}`, GET /media/{id}, signed links and the dashboard serve.

The id is the file's name in its store (media/stores/: local files under output_dir, or an S3 bucket), so the
registry needs no table of its own and survives restarts (and replicas sharing the store) for free. Every write
and read of a media file goes through here; which store is in use is the store's business only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
from pydantic import BaseModel

from mcp_server.errors import NotFound, TooLarge
from mcp_server.media.files import is_media_id, mime_type_of, new_media_id, sniff_extension
from mcp_server.media.stores.base import MediaStore, StoredFile

URI_SCHEME = "media://"


class MediaItem(BaseModel):
    """One saved file as every surface reports it."""

    id: str
    uri: str
    path: str  # where it is: a path on the replica that made it, or s3://bucket/key
    mime_type: str
    bytes: int


class MediaRegistry:
    def __init__(self, store: MediaStore) -> None:
        self.store = store

    @staticmethod
    def uri(media_id: str) -> str:
        return f"{URI_SCHEME}{media_id}"

    def _item(self, media_id: str, location: str, size: int) -> MediaItem:
        return MediaItem(
            id=media_id, uri=self.uri(media_id), path=location, mime_type=mime_type_of(media_id), bytes=size
        )

    async def save(self, data: bytes, model: str, extension: str) -> MediaItem:
        media_id = new_media_id(model, extension)
        location, size = await self.put(media_id, _one(data))
        return self._item(media_id, location, size)

    async def save_stream(self, chunks: AsyncIterator[bytes], model: str, default_extension: str) -> MediaItem:
        """Write a download as it arrives (videos can be large); the type comes from the first bytes."""
        first = b""
        async for chunk in chunks:
            first += chunk
            if len(first) >= 16:
                break
        extension = sniff_extension(first) or default_extension
        media_id = new_media_id(model, extension)
        location, size = await self.put(media_id, _then(first, chunks))
        return self._item(media_id, location, size)

    async def put(self, media_id: str, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        """Store `chunks` as `media_id` (written to the store's staging file as they come, fsynced, committed):
        its location and size. A failure leaves no partial file."""
        temp, fd = await anyio.to_thread.run_sync(self.store.create, media_id)
        size = 0
        try:
            with os.fdopen(fd, "wb") as file:
                async for chunk in chunks:
                    await anyio.to_thread.run_sync(file.write, chunk)
                    size += len(chunk)
                await anyio.to_thread.run_sync(_flush, file)
            location = await self.store.commit(media_id, temp)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: temp.unlink(missing_ok=True))
            raise
        return location, size

    async def stat(self, media_id: str) -> StoredFile | None:
        """The store's view of a file (size, and a local copy when this replica has one), or None."""
        if not is_media_id(media_id):
            return None
        return await self.store.stat(media_id)

    async def get(self, media_id: str) -> MediaItem | None:
        """The saved file for `media_id`, or None (also for anything that is not one of genroute's ids)."""
        found = await self.stat(media_id)
        return None if found is None else self._item(media_id, found.location, found.size)

    def chunks(self, media_id: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self.store.chunks(media_id, start, end)

    async def redirect_url(self, media_id: str, expires_s: int) -> str | None:
        return await self.store.redirect_url(media_id, expires_s)

    async def read(self, media_id: str, max_bytes: int) -> tuple[MediaItem, bytes]:
        item = await self.get(media_id)
        if item is None:
            raise not_found(media_id)
        if item.bytes > max_bytes:
            raise TooLarge(
                f"media://{media_id} is {item.bytes} bytes, more than the {max_bytes} bytes a resource read returns. "
                f"Open the file at {item.path} (or GET /media/{media_id} over HTTP) instead.",
                code="media_too_large",
                param="uri",
            )
        return item, await self.store.read(media_id)

    async def run(self) -> None:
        await self.store.run()

    async def aclose(self) -> None:
        await self.store.aclose()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _flush(file: object) -> None:
    file.flush()  # type: ignore[attr-defined]
    os.fsync(file.fileno())  # type: ignore[attr-defined]


def not_found(media_id: str) -> NotFound:
    return NotFound(
        f"No media file with id '{media_id}'. Ids come from generate_image, generate_video and generate_speech "
        "results (the part after media://).",
        code="media_not_found",
        param="uri",
    )
