"""What one batch of ledger records writes, worked out in Python for both stores: the ledger rows, the roll-up
deltas, and the month's spend (global and per key). The SQL of each store only writes these values."""

from __future__ import annotations

from mcp_server.store.usage import KEY_CALLER_PREFIX, Rollup, UsageRecord, month_of


def ledger_row(r: UsageRecord, at: object) -> tuple[object, ...]:
    """The ledger columns in table order, `at` as the store keeps times (epoch seconds or a timestamp)."""
    return (
        at,
        r.tool,
        r.model,
        r.provider,
        r.upstream_model,
        r.outcome,
        r.prompt_tokens,
        r.completion_tokens,
        r.images,
        r.video_seconds,
        r.characters,
        r.audio_seconds,
        r.cost_usd,
        r.latency_ms,
        r.caller,
        r.job_id,
        r.api_key_env,
    )


RollupKey = tuple[int, str, str, str]  # (bucket start in epoch seconds, model, provider, caller)


def rollup_deltas(records: list[UsageRecord], level: Rollup) -> dict[RollupKey, list[float]]:
    """Records folded into `level`'s rows: key -> [requests, errors, prompt_tokens, completion_tokens, images,
    video_seconds, characters, audio_seconds, cost_usd], sorted so that writers lock rows in one order. Epoch
    arithmetic and plain lists, not datetimes and models: a bulk load folds a million records."""
    size = int(level.size.total_seconds())
    deltas: dict[RollupKey, list[float]] = {}
    for r in records:
        epoch = int(r.at.timestamp())
        key = (epoch - epoch % size, r.model, r.provider, r.caller)
        row = deltas.get(key)
        if row is None:
            deltas[key] = [
                1,
                r.errors,
                r.prompt_tokens,
                r.completion_tokens,
                r.images,
                r.video_seconds,
                r.characters,
                r.audio_seconds,
                r.cost_usd,
            ]
        else:
            row[0] += 1
            row[1] += r.errors
            row[2] += r.prompt_tokens
            row[3] += r.completion_tokens
            row[4] += r.images
            row[5] += r.video_seconds
            row[6] += r.characters
            row[7] += r.audio_seconds
            row[8] += r.cost_usd
    return dict(sorted(deltas.items()))


def month_spend(records: list[UsageRecord]) -> dict[str, float]:
    """Cost per UTC month ("YYYY-MM") of the records that cost something."""
    spend: dict[str, float] = {}
    months: dict[int, str] = {}  # UTC day number -> month: one strftime per day, not per record
    for record in records:
        if record.cost_usd:
            day = int(record.at.timestamp() // 86400)
            month = months.get(day) or months.setdefault(day, month_of(record.at))
            spend[month] = spend.get(month, 0.0) + record.cost_usd
    return dict(sorted(spend.items()))


def key_month_spend(records: list[UsageRecord]) -> dict[tuple[str, str], float]:
    """Cost per (UTC month, key identity) of the records that keys made and that cost something, sorted (the
    order writers lock these rows in)."""
    spend: dict[tuple[str, str], float] = {}
    for record in records:
        if record.cost_usd and record.caller.startswith(KEY_CALLER_PREFIX):
            key = (month_of(record.at), record.caller)
            spend[key] = spend.get(key, 0.0) + record.cost_usd
    return dict(sorted(spend.items()))
