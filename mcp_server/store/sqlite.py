"""SQLite store in data_dir: WAL, one transaction per write, schema migrations by version at open.

sqlite3 is blocking, so statements run in the store's own single thread, on one connection: writes stay
ordered without "database is locked" retries within a process, and a long read (a usage report) never stalls
the event loop. Calls queue up in that thread's executor, so under concurrency it runs them back to back.

The exceptions are on the path of every call: the ledger write (one INSERT), budget reservations and the API
key lookup (one indexed read). Handing them to the thread and back costs more than the statements themselves, so
they run on the event loop on a second connection that never waits for the lock (busy_timeout 0): if another
connection or process holds it, the statement goes to the store's thread, which waits as long as it must. That
connection never checkpoints at commit time (a checkpoint can fsync); after every MAINTAIN_EVERY inline writes
the store's thread folds the new ledger rows into the roll-ups (see sqlite_usage) and checkpoints the WAL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_server.private_files import private_database
from mcp_server.store import media_index, sqlite_jobs, sqlite_keys, sqlite_media, sqlite_usage
from mcp_server.store.base import (
    CALLER_IDENTITY_MIGRATION,
    ApiKeyRecord,
    BudgetStatus,
    CallFilter,
    JobRecord,
    KeyBudget,
    MediaRecord,
    Reservation,
    Store,
    StoreUnavailable,
    UsageQuery,
    UsageRecord,
    UsageSummary,
    finish_write,
)
from mcp_server.store.sqlite_usage import immediate
from mcp_server.store.usage import audio_columns_sql

MAINTAIN_EVERY = 256  # inline writes between two roll-up folds + WAL checkpoints in the store's thread

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 1: video jobs
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        task_id TEXT,
        status TEXT NOT NULL,
        arguments TEXT NOT NULL,
        client_request_id TEXT,
        caller TEXT NOT NULL,
        progress REAL,
        result TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_request ON jobs (client_request_id, created_at);
    CREATE INDEX jobs_status ON jobs (status, updated_at);
    CREATE INDEX jobs_created ON jobs (created_at);
    """,
    # 2: usage ledger, its hourly roll-up, budget months and reservations
    sqlite_usage.MIGRATION,
    # 3: api keys. Idempotent (IF NOT EXISTS) so its place in this list may move when branches merge.
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        admin INTEGER NOT NULL DEFAULT 0,
        rate_limit_per_min INTEGER,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
    """,
    # 4: the roll-ups are folded from the ledger in batches; `usage_folded` marks how far they have got
    sqlite_usage.FOLD_MIGRATION,
    # 5: requests per caller and minute, for rate limits shared by processes on this file
    sqlite_keys.RATE_MIGRATION,
    # 6: which process tracks a video job, until when (several processes may serve one database)
    lambda conn: _add_columns(conn, "jobs", {"owner": "TEXT", "lease_until": "REAL"}),
    # 7: provider cooldowns shared by the processes on this file
    "CREATE TABLE IF NOT EXISTS provider_cooldowns"
    " (provider TEXT PRIMARY KEY, until REAL NOT NULL, reason TEXT NOT NULL)",
    # 8: jobs and usage belong to a key's stable identity, not its name
    CALLER_IDENTITY_MIGRATION,
    # 9: speech characters and transcribed audio seconds in the ledger and roll-ups (idempotent: may move on merge)
    lambda conn: _add_audio_columns(conn),
    # 10: shared settings (the media-link secret) and who made which media file
    media_index.sqlite_migration(),
    # 11: per-key limits (budget, ceiling per call, model allowlist) and each key's spend per month
    lambda conn: _key_limits(conn),
    # 12: which of a provider's keys (its variable's name) served each call
    lambda conn: _add_columns(conn, "usage_ledger", {"api_key_env": "TEXT"}),
]


class SQLiteStore(Store):
    writes_after_answer = True  # the inline write commits on the event loop, before anything else runs

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None  # used on the event loop only; see the module docstring
        self._inline_writes = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genroute-sqlite")

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.wrap_future(self._thread.submit(fn, *args))

    async def open(self) -> None:
        self._conn = await self._in_thread(self._connect)
        self._inline = await self._in_thread(_connection, self.path, 0)
        self._inline.execute("PRAGMA wal_autocheckpoint=0")

    def _connect(self) -> sqlite3.Connection:
        private_database(self.path)  # before SQLite creates it (and its WAL and -shm with its mode)
        conn = _connection(self.path, 30_000)
        _use_wal(conn)
        while True:  # the version is read under the write lock: two processes opening at once migrate once
            with immediate(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= len(MIGRATIONS):
                    break
                step = MIGRATIONS[version]
                if callable(step):
                    step(conn)
                else:
                    for statement in filter(str.strip, step.split(";")):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version + 1}")
        return conn

    async def close(self) -> None:
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._in_thread(conn.close)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run `fn(conn, *args)` in the store's thread; the building block for every query."""
        if self._conn is None:
            raise RuntimeError("store is not open")
        try:
            return await self._in_thread(fn, self._conn, *args)
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk full, I/O error
            raise StoreUnavailable(f"The SQLite database {self.path} is unavailable: {exc}.") from exc

    async def inline(self, fn: Any, *args: Any, uncancellable: bool = False) -> Any:
        """Run the short, indexed statement(s) `fn(conn, *args)` on the event loop, or in the store's thread
        when the database is locked by another writer (then it waits there, as `run` does). On the loop nothing
        can interrupt it (there is no await); `uncancellable` shields the wait for the thread too."""
        if self._inline is None:
            return await self._in_thread_fallback(fn, args, uncancellable)
        try:
            result = fn(self._inline, *args)
        except sqlite3.OperationalError as exc:
            if self._inline.in_transaction:  # not left holding the write lock the fallback needs
                self._inline.execute("ROLLBACK")
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise StoreUnavailable(f"The SQLite database {self.path} is unavailable: {exc}.") from exc
            return await self._in_thread_fallback(fn, args, uncancellable)
        self._inline_writes += 1
        if self._inline_writes % MAINTAIN_EVERY == 0:
            self._thread.submit(_maintain, self._conn)
        return result

    async def _in_thread_fallback(self, fn: Any, args: tuple[Any, ...], uncancellable: bool) -> Any:
        if uncancellable:
            return await finish_write(lambda: self.run(fn, *args))
        return await self.run(fn, *args)

    # --- jobs ---
    async def create_job(self, job: JobRecord, *, owner: str | None = None, lease_s: float = 0.0) -> JobRecord:
        return await self.run(sqlite_jobs.create_job, job, owner, lease_s)

    async def claim_job(
        self, job_id: str, owner: str, lease_s: float, *, stopped: Sequence[str] = ()
    ) -> JobRecord | None:
        return await self.run(sqlite_jobs.claim_job, job_id, owner, lease_s, stopped)

    async def claim_orphaned_jobs(
        self, owner: str, lease_s: float, *, limit: int = 100, stopped: Sequence[str] = ()
    ) -> list[JobRecord]:
        return await self.run(sqlite_jobs.claim_orphaned_jobs, owner, lease_s, limit, stopped)

    async def job_lease_holders(self) -> list[str]:
        return await self.run(sqlite_jobs.job_lease_holders)

    async def renew_job_leases(self, owner: str, lease_s: float) -> int:
        return await self.run(sqlite_jobs.renew_job_leases, owner, lease_s)

    async def update_job(self, job_id: str, **fields: Any) -> JobRecord | None:
        return await self.run(sqlite_jobs.update_job, job_id, fields)

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self.run(sqlite_jobs.get_job, job_id)

    async def find_job_by_request_id(self, client_request_id: str, caller: str, since: datetime) -> JobRecord | None:
        return await self.run(sqlite_jobs.find_job, client_request_id, caller, since)

    async def list_jobs(
        self, *, limit: int = 20, unfinished_only: bool = False, caller: str | None = None
    ) -> list[JobRecord]:
        return await self.run(sqlite_jobs.list_jobs, limit, unfinished_only, caller)

    async def count_jobs_by_status(self) -> dict[str, int]:
        return await self.run(sqlite_jobs.count_by_status)

    # --- api keys ---
    async def create_key(self, key: ApiKeyRecord) -> ApiKeyRecord:
        return await self.run(sqlite_keys.create, key)

    async def list_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        return await self.run(sqlite_keys.list_all, include_revoked)

    async def revoke_key(self, name: str) -> ApiKeyRecord | None:
        return await self.run(sqlite_keys.revoke, name)

    async def update_key(self, name: str, changes: dict[str, Any]) -> ApiKeyRecord | None:
        return await self.run(sqlite_keys.update, name, changes)

    async def find_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return await self.inline(sqlite_keys.find_by_hash, key_hash)  # on every authenticated request

    async def touch_key(self, key_id: str, when: datetime) -> None:
        await self.inline(sqlite_keys.touch, key_id, when)

    async def count_request(self, caller: str, window_start: int) -> tuple[int, int]:
        return await self.inline(sqlite_keys.count_request, caller, window_start)

    # --- provider cooldowns ---
    async def share_cooldown(self, provider: str, until: datetime, reason: str) -> None:
        await self.run(_share_cooldown, provider, until.timestamp(), reason)

    async def shared_cooldowns(self) -> dict[str, tuple[datetime, str]]:
        return await self.run(_shared_cooldowns, time.time())

    # --- usage and budgets ---
    async def record_usage(self, record: UsageRecord, *, reservation_id: str | None = None) -> None:
        await self.inline(sqlite_usage.record, record, reservation_id, uncancellable=True)

    async def record_usage_batch(self, records: list[UsageRecord]) -> None:
        if records:
            await self.run(sqlite_usage.record_batch, records)

    async def usage_summary(self, query: UsageQuery) -> UsageSummary:
        return await self.run(sqlite_usage.summary, query)

    async def budget_status(self, month: str, *, caller: str | None = None) -> BudgetStatus:
        return await self.run(sqlite_usage.status, month, caller)

    async def reserve_budget(
        self,
        month: str,
        limit_usd: float | None,
        amount_usd: float,
        *,
        at_least: float | None = None,
        ttl: timedelta = timedelta(hours=2),
        key: KeyBudget | None = None,
    ) -> Reservation:
        return await self.inline(sqlite_usage.reserve, month, limit_usd, amount_usd, ttl, at_least, key)

    async def release_reservation(self, reservation_id: str) -> None:
        await self.inline(sqlite_usage.release, reservation_id)

    # --- settings, media records, recent calls ---
    async def shared_setting(self, name: str, candidate: str) -> str:
        return await self.run(sqlite_media.shared_setting, name, candidate)

    async def add_media(self, record: MediaRecord) -> None:
        await self.run(sqlite_media.add_media, record)

    async def get_media(self, media_id: str) -> MediaRecord | None:
        return await self.run(sqlite_media.get_media, media_id)

    async def list_media(self, *, caller: str | None = None, limit: int = 50) -> list[MediaRecord]:
        return await self.run(sqlite_media.list_media, caller, limit)

    async def delete_media_before(self, before: datetime, *, limit: int = 1000) -> list[str]:
        return await self.run(sqlite_media.delete_media_before, before, limit)

    async def recent_calls(self, wanted: CallFilter) -> list[UsageRecord]:
        return await self.run(sqlite_media.recent_calls, wanted)


def _connection(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_ms / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: a committed write survives a killed process
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _share_cooldown(conn: sqlite3.Connection, provider: str, until: float, reason: str) -> None:
    conn.execute(
        "INSERT INTO provider_cooldowns (provider, until, reason) VALUES (?, ?, ?) ON CONFLICT (provider)"
        " DO UPDATE SET until = excluded.until, reason = excluded.reason WHERE excluded.until > until",
        (provider, until, reason),
    )


def _shared_cooldowns(conn: sqlite3.Connection, now: float) -> dict[str, tuple[datetime, str]]:
    rows = conn.execute("SELECT provider, until, reason FROM provider_cooldowns WHERE until > ?", (now,)).fetchall()
    return {row[0]: (datetime.fromtimestamp(row[1], UTC), row[2]) for row in rows}


def _add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """ALTER TABLE ADD COLUMN for the columns `table` lacks: SQLite has no ADD COLUMN IF NOT EXISTS, and a migration
    must be safe to run again."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _add_audio_columns(conn: sqlite3.Connection) -> None:
    for table, columns in audio_columns_sql(count="INTEGER", real="REAL").items():
        _add_columns(conn, table, columns)


def _key_limits(conn: sqlite3.Connection) -> None:
    _add_columns(conn, "api_keys", sqlite_keys.LIMIT_COLUMNS)
    _add_columns(conn, "budget_reservations", {"caller": "TEXT"})
    for statement in filter(str.strip, sqlite_usage.KEY_BUDGET_MIGRATION.split(";")):
        conn.execute(statement)


def _use_wal(conn: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """Switch to WAL. The switch needs the file to itself and SQLite answers "locked" at once, without waiting,
    while another process opening a fresh file holds it: wait for that (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _maintain(conn: sqlite3.Connection | None) -> None:
    """Fold the new ledger rows into the roll-ups, then copy the WAL back into the database without blocking
    writers (PASSIVE): both off the loop, in the store's thread."""
    if conn is None:
        return
    try:
        sqlite_usage.fold(conn)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass  # the next reader folds anyway; the next checkpoint (or SQLite's own at close) catches up
