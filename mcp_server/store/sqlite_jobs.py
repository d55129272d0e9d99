"""SQLite queries for video jobs and their leases (see video_jobs/engine.py): plain functions of a connection."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mcp_server.store.base import JobRecord, jobs_filter
from mcp_server.store.sqlite_usage import immediate

_JSON_FIELDS = ("arguments", "result", "error")
_JOB_COLUMNS = tuple(JobRecord.model_fields)


def to_row(job: JobRecord) -> dict[str, Any]:
    row = job.model_dump(mode="json")
    for name in _JSON_FIELDS:
        row[name] = None if row[name] is None else json.dumps(row[name])
    row["created_at"] = job.created_at.timestamp()  # epoch seconds: ordering and ranges stay numeric
    row["updated_at"] = job.updated_at.timestamp()
    return row


def from_row(row: sqlite3.Row | None) -> JobRecord | None:
    if row is None:
        return None
    data = dict(row)
    for name in _JSON_FIELDS:
        data[name] = None if data[name] is None else json.loads(data[name])
    data["created_at"] = datetime.fromtimestamp(data["created_at"], UTC)
    data["updated_at"] = datetime.fromtimestamp(data["updated_at"], UTC)
    return JobRecord.model_validate(data)


def create_job(conn: sqlite3.Connection, job: JobRecord, owner: str | None, lease_s: float) -> JobRecord:
    with immediate(conn):
        if job.client_request_id:
            since = datetime.fromtimestamp(job.created_at.timestamp() - 24 * 3600, UTC)
            existing = find_job(conn, job.client_request_id, job.caller, since)
            if existing is not None:
                return existing
        row = {**to_row(job), "owner": owner, "lease_until": time.time() + lease_s if owner else None}
        columns = (*_JOB_COLUMNS, "owner", "lease_until")
        conn.execute(f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})", row)
    return job


def claim_job(
    conn: sqlite3.Connection, job_id: str, owner: str, lease_s: float, stopped: Sequence[str]
) -> JobRecord | None:
    now = time.time()
    gone, params = _stopped(stopped)
    rows = conn.execute(
        "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ? AND status NOT IN ('completed', 'failed')"
        f" AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until <= ?{gone}) RETURNING *",
        (owner, now + lease_s, job_id, owner, now, *params),
    ).fetchall()  # read to the end: the statement, and its autocommit, is finished only then
    return from_row(rows[0]) if rows else None


def claim_orphaned_jobs(
    conn: sqlite3.Connection, owner: str, lease_s: float, limit: int, stopped: Sequence[str]
) -> list[JobRecord]:
    now = time.time()
    gone, params = _stopped(stopped)
    rows = conn.execute(
        "UPDATE jobs SET owner = ?, lease_until = ? WHERE id IN (SELECT id FROM jobs"
        f" WHERE status NOT IN ('completed', 'failed') AND (lease_until IS NULL OR lease_until <= ?{gone})"
        " ORDER BY created_at LIMIT ?) RETURNING *",
        (owner, now + lease_s, now, *params, limit),
    ).fetchall()
    return [job for row in rows if (job := from_row(row)) is not None]


def _stopped(stopped: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The `OR owner IN (...)` that lets a claim take the leases of holders known to be gone."""
    if not stopped:
        return "", ()
    return f" OR owner IN ({', '.join('?' * len(stopped))})", tuple(stopped)


def job_lease_holders(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT owner FROM jobs WHERE status NOT IN ('completed', 'failed')"
        " AND owner IS NOT NULL AND lease_until > ?",
        (time.time(),),
    ).fetchall()
    return [row[0] for row in rows]


def renew_job_leases(conn: sqlite3.Connection, owner: str, lease_s: float) -> int:
    return conn.execute(
        "UPDATE jobs SET lease_until = ? WHERE owner = ? AND status NOT IN ('completed', 'failed')",
        (time.time() + lease_s, owner),
    ).rowcount


def update_job(conn: sqlite3.Connection, job_id: str, fields: dict[str, Any]) -> JobRecord | None:
    current = get_job(conn, job_id)
    if current is None:
        return None
    updated = current.updated(fields)
    row = to_row(updated)
    assignments = ", ".join(f"{c} = :{c}" for c in _JOB_COLUMNS if c != "id")
    conn.execute(f"UPDATE jobs SET {assignments} WHERE id = :id", row)
    return updated


def get_job(conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
    return from_row(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def find_job(conn: sqlite3.Connection, client_request_id: str, caller: str, since: datetime) -> JobRecord | None:
    row = conn.execute(
        "SELECT * FROM jobs WHERE client_request_id = ? AND caller = ? AND created_at >= ?"
        " ORDER BY created_at DESC LIMIT 1",
        (client_request_id, caller, since.timestamp()),
    ).fetchone()
    return from_row(row)


def list_jobs(conn: sqlite3.Connection, limit: int, unfinished_only: bool, caller: str | None) -> list[JobRecord]:
    where, params = jobs_filter(unfinished_only, caller, "?")
    rows = conn.execute(f"SELECT * FROM jobs {where} ORDER BY created_at DESC LIMIT ?", (*params, limit)).fetchall()
    return [job for row in rows if (job := from_row(row)) is not None]


def count_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
