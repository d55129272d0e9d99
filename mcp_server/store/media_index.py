"""Who made which media file, shared settings (the media-link secret), and the recent-calls listing.

The media files themselves stay named by their ids in the media store (media/registry.py); these records add what a
file name cannot say: whose it is (the dashboard shows a key only its own), which tool and model made it, and
when it was pruned. The SQL is written once here with the store's parameter marker (`?` or `%s`); both stores run
it with their own time representation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from mcp_server.store.usage import _aware, utcnow

MediaKind = Literal["image", "video", "audio"]
CALL_COLUMNS = "at, tool, model, provider, upstream_model, outcome, prompt_tokens, completion_tokens, images, "
CALL_COLUMNS += "video_seconds, cost_usd, latency_ms, caller, job_id"


class MediaRecord(BaseModel):
    """One saved file and its owner (a caller identity, access/principals.py)."""

    id: str
    caller: str
    kind: MediaKind
    tool: str
    model: str
    mime_type: str
    bytes: int = Field(ge=0)
    created_at: datetime = Field(default_factory=utcnow)

    _aware_time = field_validator("created_at")(_aware)


class CallFilter(BaseModel):
    """The recent-calls listing's filters; None: any."""

    caller: str | None = None
    model: str | None = None
    outcome: str | None = None  # "ok", "error" (anything but ok) or one error code
    limit: int = Field(default=50, ge=1, le=500)


def sqlite_migration() -> str:
    """Idempotent, so its place among the migrations may move when branches merge."""
    return _tables(time="REAL", big="INTEGER")


def postgres_migration() -> str:
    return _tables(time="TIMESTAMPTZ", big="BIGINT") + ";"


def _tables(*, time: str, big: str) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS media_files (
        id TEXT PRIMARY KEY,
        caller TEXT NOT NULL,
        kind TEXT NOT NULL,
        tool TEXT NOT NULL,
        model TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        bytes {big} NOT NULL,
        created_at {time} NOT NULL
    );
    CREATE INDEX IF NOT EXISTS media_files_caller ON media_files (caller, created_at);
    CREATE INDEX IF NOT EXISTS media_files_created ON media_files (created_at)"""


MEDIA_COLUMNS = tuple(MediaRecord.model_fields)


def insert_media_sql(ph: str) -> str:
    columns = ", ".join(MEDIA_COLUMNS)
    values = ", ".join([ph] * len(MEDIA_COLUMNS))
    return f"INSERT INTO media_files ({columns}) VALUES ({values}) ON CONFLICT (id) DO NOTHING"


def list_media_sql(ph: str, caller: str | None, limit: int) -> tuple[str, tuple[object, ...]]:
    where, params = (f"WHERE caller = {ph}", (caller,)) if caller is not None else ("", ())
    return f"SELECT * FROM media_files {where} ORDER BY created_at DESC LIMIT {ph}", (*params, limit)


def calls_sql(ph: str, wanted: CallFilter) -> tuple[str, tuple[object, ...]]:
    """The newest ledger rows matching `wanted` (the ledger's index on `at` serves the order)."""
    conditions: list[str] = []
    params: list[object] = []
    for column in ("caller", "model"):
        value = getattr(wanted, column)
        if value is not None:
            conditions.append(f"{column} = {ph}")
            params.append(value)
    if wanted.outcome == "error":
        conditions.append("outcome <> 'ok'")
    elif wanted.outcome is not None:
        conditions.append(f"outcome = {ph}")
        params.append(wanted.outcome)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT {CALL_COLUMNS} FROM usage_ledger {where} ORDER BY at DESC LIMIT {ph}"
    return sql, (*params, wanted.limit)
