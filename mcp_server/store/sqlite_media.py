"""Shared settings, media records and the recent-calls listing on SQLite: plain functions of a connection."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from mcp_server.store.media_index import CallFilter, MediaRecord, calls_sql, insert_media_sql, list_media_sql
from mcp_server.store.sqlite_usage import immediate
from mcp_server.store.usage import UsageRecord

_TIME_FIELDS = {"created_at", "at"}


def _from_row(row: sqlite3.Row) -> dict[str, object]:
    return {key: datetime.fromtimestamp(row[key], UTC) if key in _TIME_FIELDS else row[key] for key in row.keys()}


def shared_setting(conn: sqlite3.Connection, name: str, candidate: str) -> str:
    conn.execute("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, candidate))
    return str(conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()[0])


def add_media(conn: sqlite3.Connection, record: MediaRecord) -> None:
    values = record.model_dump()
    values["created_at"] = record.created_at.timestamp()
    conn.execute(insert_media_sql("?"), tuple(values.values()))


def get_media(conn: sqlite3.Connection, media_id: str) -> MediaRecord | None:
    row = conn.execute("SELECT * FROM media_files WHERE id = ?", (media_id,)).fetchone()
    return None if row is None else MediaRecord.model_validate(_from_row(row))


def list_media(conn: sqlite3.Connection, caller: str | None, limit: int) -> list[MediaRecord]:
    sql, params = list_media_sql("?", caller, limit)
    return [MediaRecord.model_validate(_from_row(row)) for row in conn.execute(sql, params)]


def delete_media_before(conn: sqlite3.Connection, before: datetime, limit: int) -> list[str]:
    with immediate(conn):
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM media_files WHERE created_at < ? ORDER BY created_at LIMIT ?",
                (before.timestamp(), limit),
            )
        ]
        conn.executemany("DELETE FROM media_files WHERE id = ?", [(media_id,) for media_id in ids])
    return ids


def recent_calls(conn: sqlite3.Connection, wanted: CallFilter) -> list[UsageRecord]:
    sql, params = calls_sql("?", wanted)
    return [UsageRecord.model_validate(_from_row(row)) for row in conn.execute(sql, params)]
