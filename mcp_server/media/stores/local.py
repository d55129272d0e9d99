"""The local store: media files under `[server] output_dir`, named by their ids (today's behaviour, the default).

Replicas share these files only through a shared volume; the s3 store (stores/s3.py) is for replicas without one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import anyio
import anyio.to_thread

from mcp_server.media.files import MediaRoot, is_media_id, made_at
from mcp_server.media.stores.base import CHUNK_BYTES, MediaStore, StoredFile


class LocalStore(MediaStore):
    kind = "local"

    def __init__(self, output_dir: Path) -> None:
        self.root = MediaRoot(output_dir)

    def create(self, media_id: str) -> tuple[Path, int]:
        _final, temp, fd = self.root.create(media_id)
        return temp, fd

    async def commit(self, media_id: str, temp: Path) -> str:
        final = self.root.directory() / media_id
        await anyio.to_thread.run_sync(self.root.commit, temp, final)
        return str(final)

    async def stat(self, media_id: str) -> StoredFile | None:
        return await anyio.to_thread.run_sync(self._stat, media_id)

    def _stat(self, media_id: str) -> StoredFile | None:
        path = self.root.find(media_id)
        if path is None:
            return None
        try:
            return StoredFile(size=path.stat().st_size, location=str(path), local=path)
        except OSError:
            return None

    async def chunks(self, media_id: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = await anyio.to_thread.run_sync(self.root.find, media_id)
        if path is None:
            return
        async for chunk in file_chunks(path, start, end):
            yield chunk

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        return await anyio.to_thread.run_sync(
            remove_old_files, self.root.configured.expanduser().resolve(), cutoff, limit
        )

    async def ids(self) -> AsyncIterator[str]:
        directory = self.root.configured.expanduser().resolve()
        names = await anyio.to_thread.run_sync(media_names, directory)
        for name in names:
            if self.root.find(name) is not None:
                yield name


async def file_chunks(path: Path, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
    """A local file's bytes [start, end), CHUNK_BYTES at a time, read in worker threads."""
    async with await anyio.open_file(path, "rb") as file:
        await file.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            chunk = await file.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def media_names(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory) if is_media_id(entry.name))
    except FileNotFoundError:
        return []


def remove_old_files(directory: Path, cutoff: datetime, limit: int) -> int:
    """Unlink up to `limit` media files (never a directory, never through a link) older than `cutoff`."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in sorted(entries, key=lambda e: e.name):  # ids start with their time: oldest first
        made = made_at(entry.name)
        if made is None or made >= cutoff:
            continue
        if not entry.is_file(follow_symlinks=False) and not entry.is_symlink():
            continue
        try:
            Path(directory, entry.name).unlink()
            removed += 1
        except FileNotFoundError:
            pass  # another replica on the same volume got there first
        if removed >= limit:
            break
    return removed
