"""One call's ledger record, roll-ups and budget settlement on PostgreSQL as one server-side function.

Why: recording a call was seven statements in a pipelined transaction, one wait but seven statements' worth of
psycopg's client CPU (~1 ms a call here, a quarter of the bare forwarder's whole call). genroute_record (migration
14) runs the same statements in the same order (daily roll-up, hourly roll-up, the reservation, the month's row,
the key's month row: postgres_usage's lock order), inside the caller's one statement, so its own transaction.
Python still works out every value (rollup_deltas, month_spend, key_month_spend): the SQL only writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import AsyncConnection

from mcp_server.store.ledger_writes import key_month_spend, ledger_row, month_spend, rollup_deltas
from mcp_server.store.postgres_usage import KEY_MONTH_UPSERT, LEDGER_TYPES, MONTH_UPSERT, rollup_upsert
from mcp_server.store.usage import (
    ROLLUPS,
    Rollup,
    UsageRecord,
)

_SUMS = {  # a roll-up row's sums, in rollup_deltas()'s order
    **dict.fromkeys(("requests", "errors", "prompt_tokens", "completion_tokens", "images"), "BIGINT"),
    "video_seconds": "DOUBLE PRECISION",
    "characters": "BIGINT",
    **dict.fromkeys(("audio_seconds", "cost_usd"), "DOUBLE PRECISION"),
}
_TAIL = {  # then: each roll-up's bucket, the reservation settled, the month's and the key's spend
    **{f"bucket_{level.table}": "TIMESTAMPTZ" for level in ROLLUPS},
    "reservation_id": "TEXT",
    "month": "TEXT",
    "month_usd": "DOUBLE PRECISION",
    "key_caller": "TEXT",
    "key_usd": "DOUBLE PRECISION",
}
_PARAMS = {
    **{f"l_{n}": t for n, t in LEDGER_TYPES.items()},
    **{f"s_{n}": t for n, t in _SUMS.items()},
    **{f"p_{n}": t for n, t in _TAIL.items()},
}


def _rollup(level: Rollup) -> str:
    sums = ", ".join(f"s_{n}" for n in _SUMS)
    return rollup_upsert(level, f"p_bucket_{level.table}, l_model, l_provider, l_caller, {sums}")


RECORD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION genroute_record({", ".join(f"{n} {t}" for n, t in _PARAMS.items())})
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_ledger ({", ".join(LEDGER_TYPES)}) VALUES ({", ".join(f"l_{n}" for n in LEDGER_TYPES)});
    {";".join(_rollup(level) for level in ROLLUPS)};
    IF p_reservation_id IS NOT NULL THEN
        DELETE FROM budget_reservations WHERE id = p_reservation_id;
    END IF;
    IF p_month_usd IS NOT NULL THEN
        {MONTH_UPSERT.format("p_month", "p_month_usd")};
    END IF;
    IF p_key_usd IS NOT NULL THEN
        {KEY_MONTH_UPSERT.format("p_month", "p_key_caller", "p_key_usd")};
    END IF;
END
$$;
"""
_CALL = "SELECT genroute_record(" + ", ".join(f"%s::{t}" for t in _PARAMS.values()) + ")"


async def record_one(conn: AsyncConnection, record: UsageRecord, reservation_id: str | None) -> None:
    """One record, settling `reservation_id`: one statement, one round trip."""
    records = [record]
    buckets = []
    sums: list[float] = []
    for level in ROLLUPS:
        ((bucket, *_), sums), *_ = rollup_deltas(records, level).items()
        buckets.append(datetime.fromtimestamp(bucket, UTC))
    month, month_usd = next(iter(month_spend(records).items()), (None, None))
    key_caller, key_usd = next(((caller, usd) for (_, caller), usd in key_month_spend(records).items()), (None, None))
    await conn.execute(
        _CALL, (*ledger_row(record, record.at), *sums, *buckets, reservation_id, month, month_usd, key_caller, key_usd)
    )
