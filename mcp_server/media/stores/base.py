"""The one interface every media file goes through: written, looked up, streamed, signed, pruned.

Two implementations: `local` (files under output_dir, stores/local.py) and `s3` (an S3-compatible bucket, with a
local spool for files the bucket has not taken yet, stores/s3.py). The registry (media/registry.py) is the only
user; nothing else knows which store is in use. Writes are two steps so both stores stream: `create` gives a fresh
private file on local disk (the store's staging folder) that the registry fills, `commit` publishes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from mcp_server.errors import ServerFault

CHUNK_BYTES = 256 * 1024  # what a streamed read hands on at a time


class StoredFile(BaseModel):
    """A saved file as its store knows it."""

    size: int
    location: str  # for people: a path on this machine or s3://bucket/key
    local: Path | None = None  # a file on this machine's disk, served directly (sendfile, ranges) when set
    pending: bool = False  # kept on this replica's disk until the store takes it (s3 store, store unreachable)


class MediaStore(ABC):
    kind: str

    @abstractmethod
    def create(self, media_id: str) -> tuple[Path, int]:
        """A fresh temporary file (path, open fd) on local disk for `media_id`'s bytes; blocking (worker thread)."""

    @abstractmethod
    async def commit(self, media_id: str, temp: Path) -> str:
        """Publish the written temp file as `media_id`; its location. Never loses the file once it returns."""

    @abstractmethod
    async def stat(self, media_id: str) -> StoredFile | None:
        """The file behind a genroute media id, or None (also for anything that is not one)."""

    @abstractmethod
    def chunks(self, media_id: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The file's bytes [start, end) in pieces of about CHUNK_BYTES, never the whole file at once."""

    async def read(self, media_id: str) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(media_id)])

    async def redirect_url(self, media_id: str, expires_s: int) -> str | None:
        """Where to send a client instead of streaming the file through genroute (a presigned URL of the store, when
        `[media] presigned_redirects` is on), valid `expires_s`; None: stream it."""
        return None

    @abstractmethod
    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        """Remove up to `limit` files whose ids say they were made before `cutoff`, oldest first; how many."""

    @abstractmethod
    def ids(self) -> AsyncIterator[str]:
        """Every saved media id (for `genroute media migrate`)."""

    async def run(self) -> None:  # noqa: B027 (nothing to do for most stores)
        """Background work while the gateway runs (the s3 store's uploads of spooled files)."""

    async def aclose(self) -> None:  # noqa: B027
        """Release clients and connections."""


class StoreSetupError(Exception):
    """The configured store cannot be used as configured: which `[media]` key, and what to do."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key, self.problem = key, problem


def unavailable(where: str, problem: str) -> ServerFault:
    return ServerFault(
        f"The media store ({where}) cannot be reached: {problem}. Try again shortly; files made meanwhile are kept "
        "on the replica that made them until the store takes them.",
        code="media_store_unavailable",
        status=503,
    )
