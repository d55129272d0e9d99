"""The usage ledger and budgets on SQLite: plain functions of a connection.

A call's record is one INSERT into the ledger, its own transaction (committed before the call's result is
returned). The roll-ups (hourly, daily, the month's spend) are derived from the ledger in batches: `fold` adds the
rows after the `usage_folded` mark to them and moves the mark, in one transaction. Every reader of the roll-ups
(summaries, budget status and reservations) folds first, in the transaction it reads in, so it sees every
committed record; the store also folds in the background every few hundred records so that this stays small.
Writing the roll-ups per record cost three more statements and pages on the path of every call, and folding
a batch in SQL costs a fraction of that per record. Reservations take SQLite's write lock up front
(`BEGIN IMMEDIATE`): a budget check and its reservation cannot interleave with another writer, in this process
or in another one on the same file.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from mcp_server.store.ledger_writes import ledger_row
from mcp_server.store.usage import (
    KEY_CALLER_PREFIX,
    ROLLUPS,
    BudgetStatus,
    Dialect,
    KeyBudget,
    Reservation,
    Rollup,
    UsageQuery,
    UsageRecord,
    UsageSummary,
    decide,
    merge_rows,
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

# The roll-ups and month spend include every ledger row up to `ledger_id` (existing databases were up to date).
FOLD_MIGRATION = """
    CREATE TABLE usage_folded (
        only INTEGER PRIMARY KEY CHECK (only = 1),
        ledger_id INTEGER NOT NULL
    );
    INSERT INTO usage_folded (only, ledger_id) SELECT 1, COALESCE(MAX(id), 0) FROM usage_ledger
"""

_LEDGER_INSERT = (
    "INSERT INTO usage_ledger (at, tool, model, provider, upstream_model, outcome, prompt_tokens, completion_tokens,"
    " images, video_seconds, characters, audio_seconds, cost_usd, latency_ms, caller, job_id, api_key_env)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _rollup_fold(level: Rollup) -> str:
    """Ledger rows (mark, last] summed into `level`'s rows; epoch buckets floored as `rollup_deltas` does."""
    size = int(level.size.total_seconds())
    return f"""
    INSERT INTO {level.table} ({level.column}, model, provider, caller, requests, errors, prompt_tokens,
        completion_tokens, images, video_seconds, characters, audio_seconds, cost_usd)
    SELECT CAST(at AS INTEGER) - CAST(at AS INTEGER) % {size}, model, provider, caller, COUNT(*),
        SUM(outcome <> 'ok'), SUM(prompt_tokens), SUM(completion_tokens), SUM(images), SUM(video_seconds),
        SUM(characters), SUM(audio_seconds), SUM(cost_usd)
    FROM usage_ledger WHERE id > ? AND id <= ? GROUP BY 1, 2, 3, 4
    ON CONFLICT ({level.column}, model, provider, caller) DO UPDATE SET
        requests = requests + excluded.requests, errors = errors + excluded.errors,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        images = images + excluded.images, video_seconds = video_seconds + excluded.video_seconds,
        characters = characters + excluded.characters, audio_seconds = audio_seconds + excluded.audio_seconds,
        cost_usd = cost_usd + excluded.cost_usd
    """


_FOLDS = [_rollup_fold(level) for level in ROLLUPS] + [
    "INSERT INTO budget_months (month, spent_usd)"
    " SELECT strftime('%Y-%m', at, 'unixepoch'), SUM(cost_usd) FROM usage_ledger"
    " WHERE id > ? AND id <= ? AND cost_usd > 0 GROUP BY 1"
    " ON CONFLICT (month) DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd",
    "INSERT INTO budget_key_months (month, caller, spent_usd)"
    " SELECT strftime('%Y-%m', at, 'unixepoch'), caller, SUM(cost_usd) FROM usage_ledger"
    f" WHERE id > ? AND id <= ? AND cost_usd > 0 AND substr(caller, 1, 4) = '{KEY_CALLER_PREFIX}' GROUP BY 1, 2"
    " ON CONFLICT (month, caller) DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd",
]

# Each key's spend per month (kept from the ledger like budget_months), and which key a reservation holds for.
# Rows already folded are counted in; later ones come with the next fold.
KEY_BUDGET_MIGRATION = f"""
    CREATE TABLE IF NOT EXISTS budget_key_months (
        month TEXT NOT NULL,
        caller TEXT NOT NULL,
        spent_usd REAL NOT NULL,
        PRIMARY KEY (month, caller)
    ) WITHOUT ROWID;
    INSERT INTO budget_key_months (month, caller, spent_usd)
    SELECT strftime('%Y-%m', at, 'unixepoch'), caller, SUM(cost_usd) FROM usage_ledger
    WHERE id <= (SELECT ledger_id FROM usage_folded) AND cost_usd > 0
        AND substr(caller, 1, 4) = '{KEY_CALLER_PREFIX}'
    GROUP BY 1, 2 ON CONFLICT (month, caller) DO NOTHING
"""


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
    return ledger_row(r, r.at.timestamp())


def record(conn: sqlite3.Connection, record: UsageRecord, reservation_id: str | None) -> None:
    """One call's record: a single INSERT (its own transaction), or with the reservation it settles."""
    if reservation_id is None:
        conn.execute(_LEDGER_INSERT, _ledger_row(record))
        return
    with immediate(conn):
        conn.execute(_LEDGER_INSERT, _ledger_row(record))
        conn.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation_id,))


def record_batch(conn: sqlite3.Connection, records: list[UsageRecord]) -> None:
    """A bulk load (imports, benchmarks): all rows and their roll-ups in one transaction."""
    with immediate(conn):
        conn.executemany(_LEDGER_INSERT, [_ledger_row(r) for r in records])
        _fold(conn)


def fold(conn: sqlite3.Connection) -> None:
    """Fold in a transaction of its own (the store's background maintenance)."""
    with immediate(conn):
        _fold(conn)


def _fold(conn: sqlite3.Connection) -> None:
    """Bring the roll-ups up to the newest ledger row; inside the caller's write transaction."""
    mark = conn.execute("SELECT ledger_id FROM usage_folded").fetchone()[0]
    last = conn.execute("SELECT MAX(id) FROM usage_ledger").fetchone()[0]
    if last is None or last <= mark:
        return
    for statement in _FOLDS:
        conn.execute(statement, (mark, last))
    conn.execute("UPDATE usage_folded SET ledger_id = ?", (last,))


def summary(conn: sqlite3.Connection, query: UsageQuery) -> UsageSummary:
    statement = summary_statement(SQLITE, query, datetime.timestamp)
    with immediate(conn):
        _fold(conn)
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


def _key_figures(conn: sqlite3.Connection, month: str, caller: str, now: float) -> tuple[float, float]:
    """(spent, reserved) of one key in `month`."""
    spent = conn.execute(
        "SELECT spent_usd FROM budget_key_months WHERE month = ? AND caller = ?", (month, caller)
    ).fetchone()
    reserved = conn.execute(
        "SELECT COALESCE(SUM(amount_usd), 0) FROM budget_reservations WHERE month = ? AND caller = ?"
        " AND expires_at > ?",
        (month, caller, now),
    ).fetchone()
    return (float(spent[0]) if spent else 0.0), float(reserved[0])


def status(conn: sqlite3.Connection, month: str, caller: str | None = None) -> BudgetStatus:
    with immediate(conn):
        _fold(conn)
        now = _now()
        if caller is not None:
            spent, reserved = _key_figures(conn, month, caller, now)
            return BudgetStatus(month=month, spent_usd=spent, reserved_usd=reserved)
        return BudgetStatus(month=month, spent_usd=_spent(conn, month), reserved_usd=_reserved(conn, month, now))


def reserve(
    conn: sqlite3.Connection,
    month: str,
    limit_usd: float | None,
    amount_usd: float,
    ttl: timedelta,
    at_least: float | None = None,
    key: KeyBudget | None = None,
) -> Reservation:
    now = _now()
    with immediate(conn):  # the write lock: no other reservation or fold interleaves, in any process
        _fold(conn)
        conn.execute("DELETE FROM budget_reservations WHERE expires_at <= ?", (now,))
        figures = (_spent(conn, month), _reserved(conn, month, now))
        key_figures = _key_figures(conn, month, key.caller, now) if key is not None else (0.0, 0.0)
        reservation = decide(month, amount_usd, at_least, limit_usd, figures, key, key_figures)
        if reservation.granted:
            reservation.id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO budget_reservations (id, month, amount_usd, created_at, expires_at, caller)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (reservation.id, month, reservation.amount_usd, now, now + ttl.total_seconds(), key and key.caller),
            )
    return reservation


def release(conn: sqlite3.Connection, reservation_id: str) -> None:
    conn.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation_id,))


def _now() -> float:
    return utcnow().timestamp()
