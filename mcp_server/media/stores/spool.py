"""The s3 store's spool: finished files on this replica's disk until the bucket has them.

An upstream's result is paid for, so it is never lost because the store is down: every file is first written and
fsynced here (`<data_dir>/media-spool/<id>`), then uploaded and only then removed. A file whose upload failed stays,
is served from here meanwhile, and is retried in the background with capped exponential backoff; the folder is
scanned when the process starts, so a restart (or a crash) resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from mcp_server.media.files import MediaRoot
from mcp_server.media.stores.local import media_names

log = logging.getLogger("genroute.media")
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0  # the longest wait between two tries of one file
RESCAN_S = 300.0  # the folder is looked at again this often even with nothing due (files another process left)

Upload = Callable[[str, Path], Awaitable[None]]


@dataclass
class _Backoff:
    attempts: int = 0
    due: float = 0.0


@dataclass
class Spool:
    """Files waiting for the store, and the loop that uploads them. `upload(id, path)` raises on failure."""

    root: MediaRoot
    upload: Upload
    busy: set[str] = field(default_factory=set)  # ids being uploaded right now (by commit or by the loop)
    _backoff: dict[str, _Backoff] = field(default_factory=dict)
    _wake: anyio.Event = field(default_factory=anyio.Event)

    def path(self, media_id: str) -> Path | None:
        return self.root.find(media_id)

    def size(self, media_id: str) -> tuple[Path, int] | None:
        """The spooled file and its size; None when there is none (or it was uploaded and removed just now)."""
        path = self.root.find(media_id)
        try:
            return None if path is None else (path, path.stat().st_size)
        except FileNotFoundError:
            return None

    async def names(self) -> list[str]:
        return await anyio.to_thread.run_sync(media_names, self.root.configured.expanduser().resolve())

    async def try_upload(self, media_id: str) -> bool:
        """Upload one spooled file and remove it; False (logged, retried later) when the store did not take it."""
        path = await anyio.to_thread.run_sync(self.path, media_id)
        if path is None or media_id in self.busy:
            return path is None
        self.busy.add(media_id)
        try:
            await self.upload(media_id, path)
        except anyio.get_cancelled_exc_class():
            self._wake.set()  # the call that made it was cancelled: the loop takes the file over
            raise
        except Exception as error:
            state = self._backoff.setdefault(media_id, _Backoff())
            state.attempts += 1
            delay = min(RETRY_FIRST_S * 2 ** (state.attempts - 1), RETRY_MAX_S)
            state.due = time.monotonic() + delay
            log.warning(
                "media %s: upload to the store failed (try %d: %s); kept on this replica's disk, next try in %gs",
                media_id, state.attempts, _short(error), delay,
            )  # fmt: skip
            self._wake.set()
            return False
        finally:
            self.busy.discard(media_id)
        if self._backoff.pop(media_id, None) is not None:
            log.info("media %s: uploaded to the store after an earlier failure", media_id)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        return True

    async def run(self) -> None:
        """Upload whatever is spooled, as it falls due; forever (the gateway's task group cancels it)."""
        while True:
            now = time.monotonic()
            next_due = now + RESCAN_S
            for media_id in await self.names():
                state = self._backoff.get(media_id)
                if media_id in self.busy:
                    continue
                if state is not None and state.due > now:
                    next_due = min(next_due, state.due)
                    continue
                if not await self.try_upload(media_id):
                    next_due = min(next_due, self._backoff.get(media_id, _Backoff(due=now + RETRY_FIRST_S)).due)
            self._wake = anyio.Event()
            with anyio.move_on_after(max(0.05, next_due - time.monotonic())):
                await self._wake.wait()


def _short(error: BaseException) -> str:
    """The first line of a client error (obstore's carry the request's whole story); never a credential."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]
