"""PostgreSQL queries for HTTP API keys, the same semantics as sqlite_keys.py (only hashes are stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from mcp_server.store.base import KEY_LIMIT_FIELDS, ApiKeyRecord, key_name_taken, utcnow

MIGRATION = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    rate_limit_per_min INTEGER,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
"""
# Per-key limits: a monthly budget, a ceiling per call and the models (ids, aliases, globs) the key may use.
LIMITS_MIGRATION = """
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS monthly_usd DOUBLE PRECISION,
    ADD COLUMN IF NOT EXISTS max_usd_per_call DOUBLE PRECISION, ADD COLUMN IF NOT EXISTS models TEXT[];
"""

_COLUMNS = tuple(ApiKeyRecord.model_fields)


async def _one(conn: AsyncConnection[Any], sql: str, params: tuple[Any, ...] | dict[str, Any]) -> ApiKeyRecord | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
    return None if row is None else ApiKeyRecord.model_validate(row)


async def create(conn: AsyncConnection[Any], key: ApiKeyRecord) -> ApiKeyRecord:
    values = ", ".join(f"%({c})s" for c in _COLUMNS)
    try:
        await conn.execute(f"INSERT INTO api_keys ({', '.join(_COLUMNS)}) VALUES ({values})", key.model_dump())
    except psycopg.errors.UniqueViolation:
        raise key_name_taken(key.name) from None
    return key


async def list_all(conn: AsyncConnection[Any], include_revoked: bool) -> list[ApiKeyRecord]:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT * FROM api_keys {where} ORDER BY created_at, name")
        return [ApiKeyRecord.model_validate(row) for row in await cur.fetchall()]


async def revoke(conn: AsyncConnection[Any], name: str) -> ApiKeyRecord | None:
    return await _one(
        conn,
        "UPDATE api_keys SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL RETURNING *",
        (utcnow(), name),
    )


async def update(conn: AsyncConnection[Any], name: str, changes: dict[str, Any]) -> ApiKeyRecord | None:
    fields = [field for field in changes if field in KEY_LIMIT_FIELDS]
    assignments = ", ".join(f"{field} = %({field})s" for field in fields) or "name = name"
    return await _one(
        conn,
        f"UPDATE api_keys SET {assignments} WHERE name = %(name)s AND revoked_at IS NULL RETURNING *",
        {**{field: changes[field] for field in fields}, "name": name},
    )


async def find_by_hash(conn: AsyncConnection[Any], key_hash: str) -> ApiKeyRecord | None:
    return await _one(conn, "SELECT * FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL", (key_hash,))


async def touch(conn: AsyncConnection[Any], key_id: str, when: datetime) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = %s WHERE id = %s", (when, key_id))


# Requests per caller and minute, for rate limits shared by every replica (access/ratelimit.py).
RATE_MIGRATION = """
CREATE TABLE IF NOT EXISTS rate_windows (
    caller TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (caller, window_start)
);
"""

_COUNT_REQUEST = """
WITH hit AS (
    INSERT INTO rate_windows (caller, window_start, requests) VALUES (%(caller)s, %(start)s, 1)
    ON CONFLICT (caller, window_start) DO UPDATE SET requests = rate_windows.requests + 1
    RETURNING requests
)
SELECT hit.requests, COALESCE(
    (SELECT requests FROM rate_windows WHERE caller = %(caller)s AND window_start = %(previous)s), 0
) FROM hit
"""


async def count_request(conn: AsyncConnection[Any], caller: str, window_start: int) -> tuple[int, int]:
    """One round trip: the count and the previous minute's together."""
    params = {"caller": caller, "start": window_start, "previous": window_start - 60}
    cur = await conn.execute(_COUNT_REQUEST, params)
    row = await cur.fetchone()
    assert row is not None  # an INSERT ... RETURNING always returns its row
    current, previous = int(row[0]), int(row[1])
    if current == 1:  # a caller's first request this minute: minutes before the previous one, anyone's, go
        await conn.execute("DELETE FROM rate_windows WHERE window_start < %s", (window_start - 60,))
    return current, previous
