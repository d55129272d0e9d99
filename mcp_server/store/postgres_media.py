"""Shared settings, media records and the recent-calls listing on PostgreSQL (same semantics as sqlite_media)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from mcp_server.store.media_index import CallFilter, MediaRecord, calls_sql, insert_media_sql, list_media_sql
from mcp_server.store.usage import UsageRecord


async def _rows(conn: AsyncConnection[Any], sql: str, params: tuple[object, ...]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)  # type: ignore[arg-type]
        return await cur.fetchall()


async def shared_setting(conn: AsyncConnection[Any], name: str, candidate: str) -> str:
    await conn.execute(
        "INSERT INTO settings (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, candidate)
    )
    rows = await _rows(conn, "SELECT value FROM settings WHERE name = %s", (name,))
    return str(rows[0]["value"])


async def add_media(conn: AsyncConnection[Any], record: MediaRecord) -> None:
    await conn.execute(insert_media_sql("%s"), tuple(record.model_dump().values()))  # type: ignore[arg-type]


async def get_media(conn: AsyncConnection[Any], media_id: str) -> MediaRecord | None:
    rows = await _rows(conn, "SELECT * FROM media_files WHERE id = %s", (media_id,))
    return MediaRecord.model_validate(rows[0]) if rows else None


async def list_media(conn: AsyncConnection[Any], caller: str | None, limit: int) -> list[MediaRecord]:
    return [MediaRecord.model_validate(row) for row in await _rows(conn, *list_media_sql("%s", caller, limit))]


async def delete_media_before(conn: AsyncConnection[Any], before: datetime, limit: int) -> list[str]:
    rows = await _rows(
        conn,
        "DELETE FROM media_files WHERE id IN (SELECT id FROM media_files WHERE created_at < %s"
        " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
        (before, limit),
    )
    return [row["id"] for row in rows]


async def recent_calls(conn: AsyncConnection[Any], wanted: CallFilter) -> list[UsageRecord]:
    return [UsageRecord.model_validate(row) for row in await _rows(conn, *calls_sql("%s", wanted))]
