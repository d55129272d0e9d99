"""SQLite queries for HTTP API keys (see access/keys.py); only hashes are stored."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from mcp_server.store.base import KEY_LIMIT_FIELDS, ApiKeyRecord, key_name_taken

_KEY_COLUMNS = tuple(ApiKeyRecord.model_fields)
_KEY_TIMES = ("created_at", "revoked_at", "last_used_at")
LIMIT_COLUMNS = {"monthly_usd": "REAL", "max_usd_per_call": "REAL", "models": "TEXT"}  # models: a JSON list


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_row(row: sqlite3.Row | None) -> ApiKeyRecord | None:
    if row is None:
        return None
    data = dict(row)
    for name in _KEY_TIMES:
        data[name] = None if data[name] is None else datetime.fromtimestamp(data[name], UTC)
    data["admin"] = bool(data["admin"])
    return ApiKeyRecord.model_validate(data)


def _column(name: str, value: Any) -> Any:
    """A field as its column keeps it."""
    if name in _KEY_TIMES:
        return _epoch(value)
    if name == "models":
        return None if value is None else json.dumps(value)
    return value


def create(conn: sqlite3.Connection, key: ApiKeyRecord) -> ApiKeyRecord:
    row = {name: _column(name, value) for name, value in key.model_dump().items()}
    try:
        conn.execute(
            f"INSERT INTO api_keys ({', '.join(_KEY_COLUMNS)}) VALUES ({', '.join(':' + c for c in _KEY_COLUMNS)})",
            row,
        )
    except sqlite3.IntegrityError:
        raise key_name_taken(key.name) from None
    return key


def list_all(conn: sqlite3.Connection, include_revoked: bool) -> list[ApiKeyRecord]:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    rows = conn.execute(f"SELECT * FROM api_keys {where} ORDER BY created_at, name").fetchall()
    return [key for row in rows if (key := from_row(row)) is not None]


def revoke(conn: sqlite3.Connection, name: str) -> ApiKeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
    key = from_row(row)
    if key is None:
        return None
    key.revoked_at = datetime.now(UTC)
    conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (_epoch(key.revoked_at), key.id))
    return key


def update(conn: sqlite3.Connection, name: str, changes: dict[str, Any]) -> ApiKeyRecord | None:
    fields = [field for field in changes if field in KEY_LIMIT_FIELDS]
    if fields:
        conn.execute(
            f"UPDATE api_keys SET {', '.join(f'{field} = ?' for field in fields)}"
            " WHERE name = ? AND revoked_at IS NULL",
            (*(_column(field, changes[field]) for field in fields), name),
        )
    row = conn.execute("SELECT * FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
    return from_row(row)


def find_by_hash(conn: sqlite3.Connection, key_hash: str) -> ApiKeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)).fetchone()
    return from_row(row)


def touch(conn: sqlite3.Connection, key_id: str, when: datetime) -> None:
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (_epoch(when), key_id))


# Requests per caller and minute, for rate limits shared by every process on the database (access/ratelimit.py).
RATE_MIGRATION = """
    CREATE TABLE IF NOT EXISTS rate_windows (
        caller TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        PRIMARY KEY (caller, window_start)
    ) WITHOUT ROWID
"""


def count_request(conn: sqlite3.Connection, caller: str, window_start: int) -> tuple[int, int]:
    rows = conn.execute(
        "INSERT INTO rate_windows (caller, window_start, requests) VALUES (?, ?, 1)"
        " ON CONFLICT (caller, window_start) DO UPDATE SET requests = requests + 1 RETURNING requests",
        (caller, window_start),
    ).fetchall()  # read to the end: the statement, and its autocommit, is finished only then
    current = int(rows[0][0])
    if current == 1:  # a caller's first request this minute: minutes before the previous one, anyone's, go
        conn.execute("DELETE FROM rate_windows WHERE window_start < ?", (window_start - 60,))
    row = conn.execute(
        "SELECT requests FROM rate_windows WHERE caller = ? AND window_start = ?", (caller, window_start - 60)
    ).fetchone()
    return current, int(row[0]) if row else 0
