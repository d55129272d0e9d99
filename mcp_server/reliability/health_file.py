"""Provider health shared with `genroute check`, which runs as its own process.

Each serving process writes its view to `<data_dir>/health/<pid>.json` (atomically; when a provider's
state changes, else at most once a second) and removes it on shutdown. `genroute check` reads the files
of the processes still alive and prints each one's view with its age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from mcp_server.private_files import private_dir, write_private
from mcp_server.reliability.health import Health, ProviderHealth

log = logging.getLogger("genroute.health")
MIN_INTERVAL_S = 1.0


class HealthReport(BaseModel):
    pid: int
    written_at: datetime
    providers: list[ProviderHealth]


class HealthFile:
    def __init__(self, directory: Path, health: Health, providers: list[str]) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}.json"
        self.health = health
        self.providers = providers
        self._last_write = 0.0
        self._last_states: tuple[str, ...] = ()
        self._pending: asyncio.TimerHandle | None = None

    def attach(self) -> None:
        """Start writing: once now, then after recorded outcomes."""
        self.health.listeners.append(self._on_record)
        self.write()

    def _on_record(self, failed: bool) -> None:
        """A failure may change a provider's state: written at once if it did, else at most 10 times a second.
        A success cannot change a state (it is on every call's path, so it costs no snapshot): written at most
        once a second. An outcome not written at once is written by a deferred flush, so the file never stays
        behind."""
        if not failed and self._pending is not None:
            return  # the flush already due will carry it
        age = time.monotonic() - self._last_write
        interval = MIN_INTERVAL_S / 10 if failed else MIN_INTERVAL_S
        snapshot = self.health.snapshot(self.providers) if failed else None
        changed = snapshot is not None and tuple(item.state for item in snapshot) != self._last_states
        if changed or age >= interval:
            self.write(snapshot)
        elif self._pending is None:
            self._pending = _call_later(interval - age, self._flush)

    def _flush(self) -> None:
        self._pending = None
        self.write()

    def write(self, snapshot: list[ProviderHealth] | None = None) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        snapshot = snapshot if snapshot is not None else self.health.snapshot(self.providers)
        report = HealthReport(pid=os.getpid(), written_at=datetime.now(UTC), providers=snapshot)
        try:
            private_dir(self.directory)
            write_private(self.path, report.model_dump_json().encode())
        except OSError as exc:  # health reporting must never break a call
            log.debug("cannot write %s: %s", self.path, exc.strerror)
            return
        self._last_write = time.monotonic()
        self._last_states = tuple(item.state for item in snapshot)

    def detach(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        with contextlib.suppress(ValueError):
            self.health.listeners.remove(self._on_record)
        with contextlib.suppress(OSError):
            self.path.unlink()


def _call_later(delay_s: float, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
    """A timer on the running event loop (both transports run on asyncio); None means write now instead."""
    try:
        return asyncio.get_running_loop().call_later(delay_s, callback)
    except RuntimeError:
        callback()
        return None


def read_reports(directory: Path) -> list[HealthReport]:
    """The reports of serving processes that are still running, newest first."""
    reports: list[HealthReport] = []
    for file in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            report = HealthReport.model_validate_json(file.read_bytes())
        except (OSError, ValidationError):
            continue
        if _alive(report.pid):
            reports.append(report)
    return sorted(reports, key=lambda r: r.written_at, reverse=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
