"""Who made which media file: a record per saved file, so the dashboard shows each key only its own files and the
retention sweep knows what it removes. A failed record never fails the call that made (and paid for) the file."""

from __future__ import annotations

import logging

from mcp_server.media.registry import MediaItem
from mcp_server.store import Store, StoreUnavailable
from mcp_server.store.media_index import MediaKind, MediaRecord

log = logging.getLogger("genroute.media")


def kind_of(mime_type: str) -> MediaKind:
    major = mime_type.partition("/")[0]
    return major if major in ("video", "audio") else "image"  # type: ignore[return-value]


async def remember(store: Store, item: MediaItem, *, caller: str, tool: str, model: str) -> None:
    record = MediaRecord(
        id=item.id, caller=caller, kind=kind_of(item.mime_type), tool=tool, model=model,
        mime_type=item.mime_type, bytes=item.bytes,
    )  # fmt: skip
    try:
        await store.add_media(record)
    except StoreUnavailable as error:
        log.warning("media %s: its owner was not recorded (%s)", item.id, error)
