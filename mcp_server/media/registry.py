"""Media ids -> files: what `media://{id}` and GET /media/{id} serve.

The id is the file's name under output_dir, so the registry needs no table of its own and survives
restarts (and replicas sharing one output volume) for free. All disk work runs in worker threads.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
from pydantic import BaseModel

from mcp_server.errors import NotFound, TooLarge
from mcp_server.media.files import MediaRoot, mime_type_of, new_media_id, sniff_extension

URI_SCHEME = "media://"


class MediaItem(BaseModel):
    """One saved file as every surface reports it."""

    id: str
    uri: str
    path: str
    mime_type: str
    bytes: int


class MediaRegistry:
    def __init__(self, output_dir: Path) -> None:
        self.root = MediaRoot(output_dir)

    @staticmethod
    def uri(media_id: str) -> str:
        return f"{URI_SCHEME}{media_id}"

    def _item(self, media_id: str, path: Path, size: int) -> MediaItem:
        return MediaItem(
            id=media_id, uri=self.uri(media_id), path=str(path), mime_type=mime_type_of(media_id), bytes=size
        )

    async def save(self, data: bytes, model: str, extension: str) -> MediaItem:
        media_id = new_media_id(model, extension)
        path = await anyio.to_thread.run_sync(self.root.write, media_id, data)
        return self._item(media_id, path, len(data))

    async def save_stream(self, chunks: AsyncIterator[bytes], model: str, default_extension: str) -> MediaItem:
        """Write a download as it arrives (videos can be large); the type comes from the first bytes."""
        first = b""
        async for chunk in chunks:
            first += chunk
            if len(first) >= 16:
                break
        extension = sniff_extension(first) or default_extension
        media_id = new_media_id(model, extension)
        final, temp, fd = await anyio.to_thread.run_sync(self.root.create, media_id)
        size = 0
        try:
            with os.fdopen(fd, "wb") as file:
                pending = first
                while True:
                    if pending:
                        await anyio.to_thread.run_sync(file.write, pending)
                        size += len(pending)
                    try:
                        pending = await anext(chunks)
                    except StopAsyncIteration:
                        break
                await anyio.to_thread.run_sync(_flush, file)
            await anyio.to_thread.run_sync(self.root.commit, temp, final)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: temp.unlink(missing_ok=True))
            raise
        return self._item(media_id, final, size)

    def get(self, media_id: str) -> MediaItem | None:
        """The saved file for `media_id`, or None (also for anything that is not one of genroute's ids)."""
        path = self.root.find(media_id)
        if path is None:
            return None
        return self._item(media_id, path, path.stat().st_size)

    async def read(self, media_id: str, max_bytes: int) -> tuple[MediaItem, bytes]:
        item = await anyio.to_thread.run_sync(self.get, media_id)
        if item is None:
            raise not_found(media_id)
        if item.bytes > max_bytes:
            raise TooLarge(
                f"media://{media_id} is {item.bytes} bytes, more than the {max_bytes} bytes a resource read returns. "
                f"Open the file at {item.path} (or GET /media/{media_id} over HTTP) instead.",
                code="media_too_large",
                param="uri",
            )
        return item, await anyio.Path(item.path).read_bytes()


def _flush(file: object) -> None:
    file.flush()  # type: ignore[attr-defined]
    os.fsync(file.fileno())  # type: ignore[attr-defined]


def not_found(media_id: str) -> NotFound:
    return NotFound(
        f"No media file with id '{media_id}'. Ids come from generate_image / generate_video results "
        "(the part after media://).",
        code="media_not_found",
        param="uri",
    )
