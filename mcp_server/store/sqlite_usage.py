"""The usage ledger and budgets on SQLite: plain functions of a connection, run in the store's thread.

Every write is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock up front: a budget check and
its reservation cannot interleave with another writer, in this process or in another one on the same file.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from mcp_server.store.usage import (
    COST_EPSILON,
    ROLLUPS,
    BudgetStatus,
    Dialect,
    Reservation,
    Rollup,
    UsageQuery,
    UsageRecord,
    UsageSummary,
    merge_rows,
    month_spend,
    rollup_deltas,
    rollup_tables_sql,
    summary_statement,
    totals_row,
    utcnow,
)

SQLITE = Dialect(param_marker="?", day="strftime('%Y-%m-%d', {column}, 'unixepoch')")

MIGRATION = (
    """
    CREATE TABLE usage_ledger (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        tool TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        outcome TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        images INTEGER NOT NULL,
        video_seconds REAL NOT NULL,
        cost_usd REAL NOT NULL,
        latency_ms REAL NOT NULL,
        caller TEXT NOT NULL,
        job_id TEXT
    );
    CREATE INDEX usage_ledger_at ON usage_ledger (at);
    CREATE INDEX usage_ledger_job ON usage_ledger (job_id) WHERE job_id IS NOT NULL;
"""
    + rollup_tables_sql(bucket="INTEGER", count="INTEGER", real="REAL", suffix=" WITHOUT ROWID")
    + """
    CREATE TABLE budget_months (
        month TEXT PRIMARY KEY,
        spent_usd REAL NOT NULL
    );
    CREATE TABLE budget_reservations (
        id TEXT PRIMARY KEY,
        month TEXT NOT NULL,
        amount_usd REAL NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX budget_reservations_month ON budget_reservations (month, expires_at)
"""
)

_LEDGER_INSERT = (
    "INSERT INTO usage_ledger (at, tool, model, provider, upstream_model, outcome, prompt_tokens, completion_tokens,"
    " images, video_seconds, cost_usd, latency_ms, caller, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _rollup_upsert(level: Rollup) -> str:
    return f"""
    INSERT INTO {level.table} ({level.column}, model, provider, caller, requests, errors, prompt_tokens,
        completion_tokens, images, video_seconds, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT ({level.column}, model, provider, caller) DO UPDATE SET
        requests = requests + excluded.requests, errors = errors + excluded.errors,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        images = images + excluded.images, video_seconds = video_seconds + excluded.video_seconds,
        cost_usd = cost_usd + excluded.cost_usd
    """


_ROLLUP_UPSERTS = {level.table: _rollup_upsert(level) for level in ROLLUPS}

_MONTH_UPSERT = (
    "INSERT INTO budget_months (month, spent_usd) VALUES (?, ?) "
    "ON CONFLICT (month) DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd"
)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction holding SQLite's write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _ledger_row(r: UsageRecord) -> tuple[object, ...]:
    return (
        r.at.timestamp(),
        r.tool,
        r.model,
        r.provider,
        r.upstream_model,
        r.outcome,
        r.prompt_tokens,
        r.completion_tokens,
        r.images,
        r.video_seconds,
        r.cost_usd,
        r.latency_ms,
        r.caller,
        r.job_id,
    )


def record(conn: sqlite3.Connection, records: list[UsageRecord], reservation_id: str | None) -> None:
    with immediate(conn):
        _execute(conn, _LEDGER_INSERT, [_ledger_row(r) for r in records])
        for level in ROLLUPS:
            deltas = rollup_deltas(records, level)
            _execute(conn, _ROLLUP_UPSERTS[level.table], [(*key, *sums) for key, sums in deltas.items()])
        _execute(conn, _MONTH_UPSERT, list(month_spend(records).items()))
        if reservation_id is not None:
            conn.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation_id,))


def _execute(conn: sqlite3.Connection, statement: str, rows: list[tuple[object, ...]]) -> None:
    """One row (a call's record, the common case) without executemany's per-call overhead."""
    if len(rows) == 1:
        conn.execute(statement, rows[0])
    elif rows:
        conn.executemany(statement, rows)


def summary(conn: sqlite3.Connection, query: UsageQuery) -> UsageSummary:
    statement = summary_statement(SQLITE, query, datetime.timestamp)
    rows = conn.execute(*statement).fetchall() if statement else []
    return merge_rows([totals_row(tuple(row)) for row in rows])


def _spent(conn: sqlite3.Connection, month: str) -> float:
    row = conn.execute("SELECT spent_usd FROM budget_months WHERE month = ?", (month,)).fetchone()
    return float(row[0]) if row else 0.0


def _reserved(conn: sqlite3.Connection, month: str, now: float) -> float:
    row = conn.execute(
        "SELECT COALESCE(SUM(amount_usd), 0) FROM budget_reservations WHERE month = ? AND expires_at > ?",
        (month, now),
    ).fetchone()
    return float(row[0])


def status(conn: sqlite3.Connection, month: str) -> BudgetStatus:
    return BudgetStatus(month=month, spent_usd=_spent(conn, month), reserved_usd=_reserved(conn, month, _now()))


def reserve(conn: sqlite3.Connection, month: str, limit_usd: float, amount_usd: float, ttl: timedelta) -> Reservation:
    now = _now()
    with immediate(conn):
        conn.execute("DELETE FROM budget_reservations WHERE expires_at <= ?", (now,))
        spent, reserved = _spent(conn, month), _reserved(conn, month, now)
        granted = spent + reserved + amount_usd <= limit_usd + COST_EPSILON
        reservation_id = uuid.uuid4().hex if granted else None
        if granted:
            conn.execute(
                "INSERT INTO budget_reservations (id, month, amount_usd, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (reservation_id, month, amount_usd, now, now + ttl.total_seconds()),
            )
    return Reservation(
        granted=granted, id=reservation_id, month=month, amount_usd=amount_usd, spent_usd=spent, reserved_usd=reserved
    )


def release(conn: sqlite3.Connection, reservation_id: str) -> None:
    conn.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation_id,))


def _now() -> float:
    return utcnow().timestamp()
