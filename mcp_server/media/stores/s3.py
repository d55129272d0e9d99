"""The s3 store: media files in an S3-compatible bucket, so every replica serves every file.

Through obstore (Rust's object_store: async, streaming, multipart uploads; see README "Media storage"). Writes go
to the spool on local disk first (stores/spool.py), then up; reads look in the spool first (a file the bucket has
not taken yet is served by the replica that made it), then stream from the bucket in CHUNK_BYTES pieces, or hand
out a presigned URL. Keys are `<prefix>/<media id>`, so a listing comes oldest first, as ids start with their time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread

from mcp_server.media.files import MediaRoot, is_media_id, made_at, mime_type_of
from mcp_server.media.stores.base import CHUNK_BYTES, MediaStore, StoredFile, StoreSetupError, unavailable
from mcp_server.media.stores.local import file_chunks, remove_old_files
from mcp_server.media.stores.settings import StoreSettings
from mcp_server.media.stores.spool import Spool

log = logging.getLogger("genroute.media")
PART_BYTES = 5 * 1024 * 1024  # multipart upload part size; at most UPLOAD_CONCURRENCY of them in memory
UPLOAD_CONCURRENCY = 2
CONNECT_TIMEOUT_S = 5


def _obstore() -> Any:
    try:
        import obstore
    except ImportError:
        raise StoreSetupError("store", 'store = "s3" needs the s3 extra: pip install "genroute[s3]"') from None
    return obstore


class S3MediaStore(MediaStore):
    kind = "s3"

    def __init__(self, settings: StoreSettings, spool_dir: Path) -> None:
        self._obs = _obstore()
        from obstore.store import S3Store

        assert settings.bucket is not None  # StoreSettings requires it with store = "s3"
        self.bucket, self.prefix = settings.bucket, settings.prefix
        self.redirects = settings.presigned_redirects
        try:
            credentials = settings.credentials()
        except ValueError as error:
            raise StoreSetupError("access_key_env", str(error)) from None
        options: dict[str, Any] = {"region": settings.region}
        if settings.endpoint_url:
            options["endpoint"] = settings.endpoint_url
        if credentials is not None:
            options["access_key_id"], options["secret_access_key"] = credentials
        self._client = S3Store(
            settings.bucket,
            **options,
            client_options={
                "allow_http": bool(settings.endpoint_url and settings.endpoint_url.startswith("http://")),
                "timeout": f"{settings.store_timeout_s:g}s",
                "connect_timeout": f"{CONNECT_TIMEOUT_S}s",
            },
            retry_config={
                "max_retries": 2,
                "backoff": {"init_backoff": timedelta(seconds=0.2), "max_backoff": timedelta(seconds=2), "base": 2},
                "retry_timeout": timedelta(seconds=settings.store_timeout_s),
            },
        )
        self.spool = Spool(MediaRoot(spool_dir, "[server] data_dir (its media-spool folder)"), self._upload)

    def key(self, media_id: str) -> str:
        return f"{self.prefix}/{media_id}" if self.prefix else media_id

    def _location(self, media_id: str) -> str:
        return f"s3://{self.bucket}/{self.key(media_id)}"

    def create(self, media_id: str) -> tuple[Path, int]:
        _final, temp, fd = self.spool.root.create(media_id)
        return temp, fd

    async def commit(self, media_id: str, temp: Path) -> str:
        """Spooled (fsynced, renamed) first: from then on the file survives a store outage and a restart."""
        final = self.spool.root.directory() / media_id
        await anyio.to_thread.run_sync(self.spool.root.commit, temp, final)
        await self.spool.try_upload(media_id)
        return self._location(media_id)

    async def _upload(self, media_id: str, path: Path) -> None:
        await self._obs.put_async(
            self._client,
            self.key(media_id),
            path,
            attributes={"Content-Type": mime_type_of(media_id)},
            chunk_size=PART_BYTES,
            max_concurrency=UPLOAD_CONCURRENCY,
        )

    async def stat(self, media_id: str) -> StoredFile | None:
        spooled = await anyio.to_thread.run_sync(self.spool.size, media_id)
        if spooled is not None:
            path, size = spooled
            return StoredFile(size=size, location=self._location(media_id), local=path, pending=True)
        try:
            meta = await self._obs.head_async(self._client, self.key(media_id))
        except FileNotFoundError:
            return None
        except Exception as error:
            raise self._down(error) from None
        return StoredFile(size=int(meta["size"]), location=self._location(media_id))

    async def chunks(self, media_id: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        spooled = await anyio.to_thread.run_sync(self.spool.path, media_id)
        if spooled is not None:
            try:
                async for chunk in file_chunks(spooled, start, end):
                    yield chunk
                return
            except FileNotFoundError:
                pass  # uploaded and removed since: the bucket has it
        options: dict[str, Any] = {}
        if start or end is not None:
            options["range"] = (start, end) if end is not None else {"offset": start}
        try:
            result = await self._obs.get_async(self._client, self.key(media_id), options=options)
        except FileNotFoundError:
            return
        except Exception as error:
            raise self._down(error) from None
        async for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
            yield bytes(chunk)

    async def redirect_url(self, media_id: str, expires_s: int) -> str | None:
        if not self.redirects or await anyio.to_thread.run_sync(self.spool.path, media_id) is not None:
            return None  # not in the bucket yet: this replica serves it
        url = await self._obs.sign_async(self._client, "GET", self.key(media_id), timedelta(seconds=expires_s))
        return str(url)

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        spool_dir = self.spool.root.configured.expanduser().resolve()
        removed = await anyio.to_thread.run_sync(remove_old_files, spool_dir, cutoff, limit)
        old: list[str] = []
        try:
            async for media_id in self._bucket_ids():
                made = made_at(media_id)
                if made is None:
                    continue
                if made >= cutoff or len(old) + removed >= limit:
                    break
                old.append(self.key(media_id))
            if old:
                await self._obs.delete_async(self._client, old)
        except Exception as error:
            raise self._down(error) from None
        return removed + len(old)

    async def ids(self) -> AsyncIterator[str]:
        for media_id in await self.spool.names():
            yield media_id
        async for media_id in self._bucket_ids():
            yield media_id

    async def _bucket_ids(self) -> AsyncIterator[str]:
        """Media ids in the bucket under the prefix, in key order (oldest first)."""
        prefix = f"{self.prefix}/" if self.prefix else None
        async for batch in self._obs.list(self._client, prefix=prefix, chunk_size=1000):
            for meta in batch:
                name = str(meta["path"]).rsplit("/", 1)[-1]
                if is_media_id(name) and str(meta["path"]) == self.key(name):
                    yield name

    async def run(self) -> None:
        await self.spool.run()

    def _down(self, error: BaseException) -> Exception:
        log.warning("media store s3://%s unreachable: %s", self.bucket, str(error).strip().splitlines()[:1])
        return unavailable(f"s3://{self.bucket}", "it did not answer (see the server log)")
