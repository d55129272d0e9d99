"""`[server] media_retention_days`: media files older than that are removed, with their records, in the background.

A file's age is in its id (`<UTC time>-<model>-<hex>.<ext>`, media/files.py), so the sweep needs no record to
find what to remove and a link to a removed file can say "pruned" (410) rather than "unknown" (404). Each pass
removes at most PRUNE_BATCH files and records, then the next pass comes PRUNE_EVERY_S later (sooner while a
backlog remains): a first start over years of files never holds the disk or the database for long.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import anyio

from mcp_server.errors import GatewayError
from mcp_server.media.files import made_at
from mcp_server.media.stores.base import MediaStore
from mcp_server.store import Store, StoreUnavailable

log = logging.getLogger("genroute.media")
PRUNE_BATCH = 500
PRUNE_EVERY_S = 3600.0
BACKLOG_PAUSE_S = 1.0


def pruned(media_id: str, retention_days: float | None, now: datetime | None = None) -> bool:
    """A genroute media id older than the retention period: its file was removed on purpose."""
    made = made_at(media_id)
    if retention_days is None or made is None:
        return False
    return made < (now or datetime.now(UTC)) - timedelta(days=retention_days)


async def prune_once(store: Store, media: MediaStore, retention_days: float, now: datetime | None = None) -> int:
    """One bounded pass: (files removed) + (records dropped); PRUNE_BATCH of each at most."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    files = await media.delete_before(cutoff, PRUNE_BATCH)
    records = await store.delete_media_before(cutoff, limit=PRUNE_BATCH)
    if files or records:
        log.info("media retention: removed %d files and %d records older than %s", files, len(records), cutoff)
    return files + len(records)


async def prune_forever(store: Store, media: MediaStore, retention_days: float) -> None:
    """The background sweep (gateway.running starts it when `[server] media_retention_days` is set)."""
    while True:
        try:
            done = await prune_once(store, media, retention_days)
        except (StoreUnavailable, GatewayError, OSError) as error:
            log.warning("media retention: this pass failed (%s); trying again later", error)
            done = 0
        await anyio.sleep(BACKLOG_PAUSE_S if done >= PRUNE_BATCH else PRUNE_EVERY_S)
