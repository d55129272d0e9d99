"""The usage ledger and budgets on PostgreSQL, shared by every replica.

Lock order, so concurrent writers never deadlock: a recording transaction touches its roll-up rows (sorted), its
reservation, and last the month's row; a reservation transaction locks the month's row first and then only
inserts. Whoever holds the month row therefore never waits for another lock.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from mcp_server.store.ledger_writes import key_month_spend, ledger_row, month_spend, rollup_deltas
from mcp_server.store.usage import (
    COST_EPSILON,
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
    audio_columns_sql,
    merge_rows,
    rollup_tables_sql,
    summary_statement,
    totals_row,
)

POSTGRES = Dialect(param_marker="%s", day="to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')")

MIGRATION = (
    """
    CREATE TABLE usage_ledger (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL,
        tool TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        outcome TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        images INTEGER NOT NULL,
        video_seconds DOUBLE PRECISION NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        caller TEXT NOT NULL,
        job_id TEXT
    );
    CREATE INDEX usage_ledger_at ON usage_ledger (at);
    CREATE INDEX usage_ledger_job ON usage_ledger (job_id) WHERE job_id IS NOT NULL;
"""
    + rollup_tables_sql(bucket="TIMESTAMPTZ", count="BIGINT", real="DOUBLE PRECISION")
    + """
    CREATE TABLE budget_months (
        month TEXT PRIMARY KEY,
        spent_usd DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE budget_reservations (
        id TEXT PRIMARY KEY,
        month TEXT NOT NULL,
        amount_usd DOUBLE PRECISION NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX budget_reservations_month ON budget_reservations (month, expires_at);
"""
)

_TEXT, _BIG, _REAL = "TEXT", "BIGINT", "DOUBLE PRECISION"
LEDGER_TYPES = {  # the ledger's columns in ledger_row()'s order, as genroute_record takes them
    "at": "TIMESTAMPTZ",
    **dict.fromkeys(("tool", "model", "provider", "upstream_model", "outcome"), _TEXT),
    **dict.fromkeys(("prompt_tokens", "completion_tokens"), _BIG),
    "images": "INTEGER",
    "video_seconds": _REAL,
    "characters": _BIG,
    **dict.fromkeys(("audio_seconds", "cost_usd", "latency_ms"), _REAL),
    **dict.fromkeys(("caller", "job_id", "api_key_env"), _TEXT),
}
_LEDGER_COLUMNS = ", ".join(LEDGER_TYPES)

# Speech characters and transcribed audio seconds (see store/usage.py AUDIO_COLUMNS); idempotent
AUDIO_MIGRATION = ";\n".join(
    f"ALTER TABLE {table} " + ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in columns.items())
    for table, columns in audio_columns_sql(count="BIGINT", real="DOUBLE PRECISION").items()
)


def rollup_upsert(level: Rollup, values: str = ", ".join(["%s"] * 13)) -> str:
    """The upsert adding `values` (bucket, model, provider, caller, then the sums) to one of `level`'s rows."""
    return f"""
    INSERT INTO {level.table} AS u ({level.column}, model, provider, caller, requests, errors, prompt_tokens,
        completion_tokens, images, video_seconds, characters, audio_seconds, cost_usd)
        VALUES ({values})
    ON CONFLICT ({level.column}, model, provider, caller) DO UPDATE SET
        requests = u.requests + excluded.requests, errors = u.errors + excluded.errors,
        prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = u.completion_tokens + excluded.completion_tokens,
        images = u.images + excluded.images, video_seconds = u.video_seconds + excluded.video_seconds,
        characters = u.characters + excluded.characters, audio_seconds = u.audio_seconds + excluded.audio_seconds,
        cost_usd = u.cost_usd + excluded.cost_usd
    """


MONTH_UPSERT = (
    "INSERT INTO budget_months AS b (month, spent_usd) VALUES ({}, {}) "
    "ON CONFLICT (month) DO UPDATE SET spent_usd = b.spent_usd + excluded.spent_usd"
)
KEY_MONTH_UPSERT = (
    "INSERT INTO budget_key_months AS b (month, caller, spent_usd) VALUES ({}, {}, {}) "
    "ON CONFLICT (month, caller) DO UPDATE SET spent_usd = b.spent_usd + excluded.spent_usd"
)
_COPY_ABOVE = 64  # records; COPY beats a pipelined INSERT for bulk loads


def _ledger_row(r: UsageRecord) -> tuple[object, ...]:
    return ledger_row(r, r.at)


async def record(conn: AsyncConnection, records: list[UsageRecord], reservation_id: str | None) -> None:
    # In a pipeline the transaction's statements go out together and the server answers them in one round trip
    # at COMMIT (no statement here needs an earlier one's answer): one wait a record instead of eight. COPY, for
    # large batches, cannot run in one.
    pipeline = conn.pipeline() if len(records) <= _COPY_ABOVE else contextlib.nullcontext()
    async with pipeline, conn.transaction(), conn.cursor() as cur:
        if len(records) > _COPY_ABOVE:
            async with cur.copy(f"COPY usage_ledger ({_LEDGER_COLUMNS}) FROM STDIN") as copy:
                for r in records:
                    await copy.write_row(_ledger_row(r))
        else:
            values = ", ".join(["%s"] * 17)
            await cur.executemany(
                f"INSERT INTO usage_ledger ({_LEDGER_COLUMNS}) VALUES ({values})", [_ledger_row(r) for r in records]
            )
        for level in ROLLUPS:  # daily rows, then hourly ones, each in key order: one lock order for all writers
            rows = [
                (datetime.fromtimestamp(bucket, UTC), model, provider, caller, *sums)
                for (bucket, model, provider, caller), sums in rollup_deltas(records, level).items()
            ]
            await cur.executemany(rollup_upsert(level), rows)
        if reservation_id is not None:
            await cur.execute("DELETE FROM budget_reservations WHERE id = %s", (reservation_id,))
        spend = list(month_spend(records).items())
        if spend:
            await cur.executemany(MONTH_UPSERT.format("%s", "%s"), spend)
        key_spend = [(month, caller, usd) for (month, caller), usd in key_month_spend(records).items()]
        if key_spend:  # after the month's row, as a reservation locks them: one order for every writer
            await cur.executemany(KEY_MONTH_UPSERT.format("%s", "%s", "%s"), key_spend)


async def summary(conn: AsyncConnection, query: UsageQuery) -> UsageSummary:
    statement = summary_statement(POSTGRES, query, lambda at: at)
    rows = await (await conn.execute(*statement)).fetchall() if statement else []
    return merge_rows([totals_row(tuple(row)) for row in rows])


async def status(conn: AsyncConnection, month: str, caller: str | None = None) -> BudgetStatus:
    """The month's (or one key's) settled spend and reservations in flight, unlocked: a reading, not a decision."""
    months, where = ("budget_key_months", " AND caller = %s") if caller is not None else ("budget_months", "")
    params = (month, caller) if caller is not None else (month,)
    async with conn.pipeline():  # both sent before either is read: one round trip
        spent_cur = await conn.execute(f"SELECT spent_usd FROM {months} WHERE month = %s{where}", params)
        cur = await conn.execute(
            f"SELECT COALESCE(SUM(amount_usd), 0) FROM budget_reservations WHERE month = %s{where}"
            " AND expires_at > now()",
            params,
        )
        row = await spent_cur.fetchone()
        reserved = await cur.fetchone()
    spent = float(row[0]) if row else 0.0
    return BudgetStatus(month=month, spent_usd=spent, reserved_usd=float(reserved[0] if reserved else 0.0))


async def reserve(
    conn: AsyncConnection,
    month: str,
    limit_usd: float | None,
    amount_usd: float,
    ttl: timedelta,
    at_least: float | None = None,
    key: KeyBudget | None = None,
) -> Reservation:
    """One round trip: genroute_reserve (RESERVE_FUNCTION) takes the locks, decides and inserts in the server."""
    reservation_id = uuid.uuid4().hex
    cur = await conn.execute(
        "SELECT * FROM genroute_reserve(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            reservation_id,
            month,
            limit_usd,
            amount_usd,
            at_least,
            ttl.total_seconds(),
            key and key.caller,
            key and key.limit_usd,
            COST_EPSILON,
        ),
    )
    row = await cur.fetchone()
    assert row is not None  # a function with OUT parameters returns one row
    held, spent, reserved, scope = row
    return Reservation(
        granted=held is not None,
        id=None if held is None else reservation_id,
        month=month,
        amount_usd=amount_usd if held is None else float(held),
        spent_usd=float(spent),
        reserved_usd=float(reserved),
        scope=scope,
    )


# The reservation in the server, one round trip instead of three (each a few hundred us of psycopg's CPU): the
# same statements, locks, order and decision as store/usage.py's decide() (grantable() below is its grantable()).
# Expired reservations go first with SKIP LOCKED, so this never waits on a row a recording call is deleting; the
# month row (then the key's) is locked before any sum is read, and each statement in a plpgsql function sees what
# committed before it ran, so the sums include every reservation made by whoever held the lock before.
RESERVE_FUNCTION = """
CREATE OR REPLACE FUNCTION genroute_grantable(spent DOUBLE PRECISION, reserved DOUBLE PRECISION,
    lim DOUBLE PRECISION, amount DOUBLE PRECISION, at_least DOUBLE PRECISION, eps DOUBLE PRECISION)
RETURNS DOUBLE PRECISION LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN amount <= lim - spent - reserved + eps THEN amount
        WHEN at_least IS NOT NULL AND at_least <= lim - spent - reserved + eps
            THEN GREATEST(lim - spent - reserved, at_least) END
$$;
CREATE OR REPLACE FUNCTION genroute_reserve(p_id TEXT, p_month TEXT, p_limit DOUBLE PRECISION,
    p_amount DOUBLE PRECISION, p_at_least DOUBLE PRECISION, p_ttl_s DOUBLE PRECISION, p_caller TEXT,
    p_key_limit DOUBLE PRECISION, p_eps DOUBLE PRECISION, OUT held DOUBLE PRECISION,
    OUT spent DOUBLE PRECISION, OUT reserved DOUBLE PRECISION, OUT scope TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    key_spent DOUBLE PRECISION;
    key_reserved DOUBLE PRECISION;
    by_key DOUBLE PRECISION;
BEGIN
    DELETE FROM budget_reservations WHERE id IN (SELECT r.id FROM budget_reservations r
        WHERE r.expires_at <= now() FOR UPDATE SKIP LOCKED);
    held := p_amount; spent := 0; reserved := 0; scope := 'global';
    IF p_limit IS NOT NULL THEN
        INSERT INTO budget_months (month, spent_usd) VALUES (p_month, 0) ON CONFLICT (month) DO NOTHING;
        SELECT b.spent_usd INTO spent FROM budget_months b WHERE b.month = p_month FOR UPDATE;
        SELECT COALESCE(SUM(r.amount_usd), 0) INTO reserved FROM budget_reservations r
            WHERE r.month = p_month AND r.expires_at > now();
        held := genroute_grantable(spent, reserved, p_limit, p_amount, p_at_least, p_eps);
    END IF;
    IF p_caller IS NOT NULL THEN
        INSERT INTO budget_key_months (month, caller, spent_usd) VALUES (p_month, p_caller, 0)
            ON CONFLICT (month, caller) DO NOTHING;
        SELECT b.spent_usd INTO key_spent FROM budget_key_months b
            WHERE b.month = p_month AND b.caller = p_caller FOR UPDATE;
        SELECT COALESCE(SUM(r.amount_usd), 0) INTO key_reserved FROM budget_reservations r
            WHERE r.month = p_month AND r.caller = p_caller AND r.expires_at > now();
        IF held IS NOT NULL THEN
            by_key := genroute_grantable(key_spent, key_reserved, p_key_limit, held, p_at_least, p_eps);
            IF by_key IS NULL OR by_key < held THEN
                scope := 'key'; spent := key_spent; reserved := key_reserved;
            END IF;
            held := by_key;
        END IF;
    END IF;
    IF held IS NOT NULL THEN
        INSERT INTO budget_reservations (id, month, amount_usd, created_at, expires_at, caller)
            VALUES (p_id, p_month, held, now(), now() + make_interval(secs => p_ttl_s), p_caller);
    END IF;
END
$$;
"""


# Each key's spend per month, kept with the ledger like budget_months, and which key a reservation holds for.
KEY_BUDGET_MIGRATION = f"""
ALTER TABLE budget_reservations ADD COLUMN IF NOT EXISTS caller TEXT;
CREATE TABLE IF NOT EXISTS budget_key_months (
    month TEXT NOT NULL,
    caller TEXT NOT NULL,
    spent_usd DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (month, caller)
);
INSERT INTO budget_key_months (month, caller, spent_usd)
SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM'), caller, SUM(cost_usd) FROM usage_ledger
WHERE cost_usd > 0 AND starts_with(caller, '{KEY_CALLER_PREFIX}')
GROUP BY 1, 2 ON CONFLICT (month, caller) DO NOTHING;
"""


async def release(conn: AsyncConnection, reservation_id: str) -> None:
    await conn.execute("DELETE FROM budget_reservations WHERE id = %s", (reservation_id,))
