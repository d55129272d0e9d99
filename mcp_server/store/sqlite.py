"""SQLite store in data_dir: WAL, one transaction per write, schema migrations by version at open.

sqlite3 is blocking, so every statement runs in a worker thread; one connection serialised by a
limiter keeps writes ordered without "database is locked" retries within a process.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from mcp_server.errors import GatewayError
from mcp_server.store.base import ApiKeyRecord, JobRecord, Store

MIGRATIONS: list[str] = [
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
    # api keys. Idempotent (IF NOT EXISTS) so its place in this list may move when branches merge.
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
]

_JSON_FIELDS = ("arguments", "result", "error")
_JOB_COLUMNS = tuple(JobRecord.model_fields)


class SQLiteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await anyio.to_thread.run_sync(self._connect)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: a committed write survives a killed process
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run `fn(conn, *args)` in the store's thread; the building block for every query."""
        if self._conn is None:
            raise RuntimeError("store is not open")
        return await anyio.to_thread.run_sync(fn, self._conn, *args, limiter=self._limiter)

    # --- jobs ---
    async def create_job(self, job: JobRecord) -> JobRecord:
        return await self.run(_create_job, job)

    async def update_job(self, job_id: str, **fields: Any) -> JobRecord | None:
        return await self.run(_update_job, job_id, fields)

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self.run(_get_job, job_id)

    async def find_job_by_request_id(self, client_request_id: str, since: datetime) -> JobRecord | None:
        return await self.run(_find_job, client_request_id, since)

    async def list_jobs(self, *, limit: int = 20, unfinished_only: bool = False) -> list[JobRecord]:
        return await self.run(_list_jobs, limit, unfinished_only)

    # --- api keys ---
    async def create_key(self, key: ApiKeyRecord) -> ApiKeyRecord:
        return await self.run(_create_key, key)

    async def list_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        return await self.run(_list_keys, include_revoked)

    async def revoke_key(self, name: str) -> ApiKeyRecord | None:
        return await self.run(_revoke_key, name)

    async def find_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return await self.run(_find_key_by_hash, key_hash)

    async def touch_key(self, key_id: str, when: datetime) -> None:
        await self.run(_touch_key, key_id, when)


def _to_row(job: JobRecord) -> dict[str, Any]:
    row = job.model_dump(mode="json")
    for name in _JSON_FIELDS:
        row[name] = None if row[name] is None else json.dumps(row[name])
    row["created_at"] = job.created_at.timestamp()  # epoch seconds: ordering and ranges stay numeric
    row["updated_at"] = job.updated_at.timestamp()
    return row


def _from_row(row: sqlite3.Row | None) -> JobRecord | None:
    if row is None:
        return None
    data = dict(row)
    for name in _JSON_FIELDS:
        data[name] = None if data[name] is None else json.loads(data[name])
    data["created_at"] = datetime.fromtimestamp(data["created_at"], UTC)
    data["updated_at"] = datetime.fromtimestamp(data["updated_at"], UTC)
    return JobRecord.model_validate(data)


def _create_job(conn: sqlite3.Connection, job: JobRecord) -> JobRecord:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if job.client_request_id:
            since = datetime.fromtimestamp(job.created_at.timestamp() - 24 * 3600, UTC)
            existing = _find_job(conn, job.client_request_id, since)
            if existing is not None:
                conn.execute("COMMIT")
                return existing
        row = _to_row(job)
        conn.execute(
            f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join(':' + c for c in _JOB_COLUMNS)})", row
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return job


def _update_job(conn: sqlite3.Connection, job_id: str, fields: dict[str, Any]) -> JobRecord | None:
    current = _get_job(conn, job_id)
    if current is None:
        return None
    updated = current.model_copy(update={**fields, "updated_at": datetime.now(UTC)})
    row = _to_row(updated)
    assignments = ", ".join(f"{c} = :{c}" for c in _JOB_COLUMNS if c != "id")
    conn.execute(f"UPDATE jobs SET {assignments} WHERE id = :id", row)
    return updated


def _get_job(conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
    return _from_row(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def _find_job(conn: sqlite3.Connection, client_request_id: str, since: datetime) -> JobRecord | None:
    row = conn.execute(
        "SELECT * FROM jobs WHERE client_request_id = ? AND created_at >= ? ORDER BY created_at DESC LIMIT 1",
        (client_request_id, since.timestamp()),
    ).fetchone()
    return _from_row(row)


def _list_jobs(conn: sqlite3.Connection, limit: int, unfinished_only: bool) -> list[JobRecord]:
    where = "WHERE status NOT IN ('completed', 'failed')" if unfinished_only else ""
    rows = conn.execute(f"SELECT * FROM jobs {where} ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
    return [job for row in rows if (job := _from_row(row)) is not None]


_KEY_COLUMNS = tuple(ApiKeyRecord.model_fields)
_KEY_TIMES = ("created_at", "revoked_at", "last_used_at")


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _key_from_row(row: sqlite3.Row | None) -> ApiKeyRecord | None:
    if row is None:
        return None
    data = dict(row)
    for name in _KEY_TIMES:
        data[name] = None if data[name] is None else datetime.fromtimestamp(data[name], UTC)
    data["admin"] = bool(data["admin"])
    return ApiKeyRecord.model_validate(data)


def _create_key(conn: sqlite3.Connection, key: ApiKeyRecord) -> ApiKeyRecord:
    row = key.model_dump()
    for name in _KEY_TIMES:
        row[name] = _epoch(row[name])
    try:
        conn.execute(
            f"INSERT INTO api_keys ({', '.join(_KEY_COLUMNS)}) VALUES ({', '.join(':' + c for c in _KEY_COLUMNS)})",
            row,
        )
    except sqlite3.IntegrityError:
        raise GatewayError(
            f"A key named '{key.name}' already exists. Revoke it first or pick another name.",
            code="key_exists",
            param="name",
            status=409,
        ) from None
    return key


def _list_keys(conn: sqlite3.Connection, include_revoked: bool) -> list[ApiKeyRecord]:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    rows = conn.execute(f"SELECT * FROM api_keys {where} ORDER BY created_at, name").fetchall()
    return [key for row in rows if (key := _key_from_row(row)) is not None]


def _revoke_key(conn: sqlite3.Connection, name: str) -> ApiKeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
    key = _key_from_row(row)
    if key is None:
        return None
    key.revoked_at = datetime.now(UTC)
    conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (_epoch(key.revoked_at), key.id))
    return key


def _find_key_by_hash(conn: sqlite3.Connection, key_hash: str) -> ApiKeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)).fetchone()
    return _key_from_row(row)


def _touch_key(conn: sqlite3.Connection, key_id: str, when: datetime) -> None:
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (_epoch(when), key_id))
