"""get_usage over a month of one million ledger records, on SQLite and (when configured) PostgreSQL.

    python bench/bench_usage.py [--records 1000000] [--repeats 30] [--backend all|sqlite|postgres]

Fills a fresh store with records spread evenly over January 2025 (bulk insert, one transaction per chunk),
then times the queries get_usage makes (the same `build_report` the tool and `genroute usage` call) and prints
p50/p95 per query. PostgreSQL runs when GENROUTE_TEST_DATABASE_URL is set (in a throwaway schema). The naive
scan of the whole ledger, without the hourly roll-up, is timed too, for comparison. Results go to
bench/results/usage.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcp_server.catalog import Catalog  # noqa: E402
from mcp_server.store.base import Store, UsageQuery, UsageRecord  # noqa: E402
from mcp_server.store.usage import LEDGER, aggregate_sql  # noqa: E402
from mcp_server.usage.report import build_report  # noqa: E402

MONTH_START = datetime(2025, 1, 1, tzinfo=UTC)
MONTH_SECONDS = 31 * 86400
MODELS = [(f"model-{i:02d}", f"provider-{i % 4}") for i in range(12)]
CALLERS = ["stdio", "alice", "bob", "ci", "batch"]
CHUNK = 50_000
MONTH_QUERY = UsageQuery(start=MONTH_START, end=MONTH_START + timedelta(seconds=MONTH_SECONDS), group_by="model")
TARGET_MS = 100.0
PG_ENV = "GENROUTE_TEST_DATABASE_URL"

# name -> get_usage arguments
QUERIES: dict[str, dict[str, str]] = {
    "month by model": {"start_date": "2025-01-01", "end_date": "2025-01-31", "group_by": "model"},
    "month by day": {"start_date": "2025-01-01", "end_date": "2025-01-31", "group_by": "day"},
    "month by provider": {"start_date": "2025-01-01", "end_date": "2025-01-31", "group_by": "provider"},
    "month by caller": {"start_date": "2025-01-01", "end_date": "2025-01-31", "group_by": "caller"},
    "month, one model, by day": {
        "start_date": "2025-01-01",
        "end_date": "2025-01-31",
        "model": "model-03",
        "group_by": "day",
    },
    "odd instants (partial hours)": {
        "start_date": "2025-01-03T07:13:21Z",
        "end_date": "2025-01-27T16:48:30Z",
        "group_by": "model",
    },
    "one day by caller": {"start_date": "2025-01-15", "end_date": "2025-01-15", "group_by": "caller"},
}


def records(count: int, seed: int = 7) -> Iterator[list[UsageRecord]]:
    """`count` records spread evenly over the month, in time order, in chunks."""
    rng = random.Random(seed)
    step = MONTH_SECONDS / count
    chunk: list[UsageRecord] = []
    for i in range(count):
        model, provider = MODELS[rng.randrange(len(MODELS))]
        ok = rng.random() > 0.03
        prompt, completion = rng.randrange(20, 4000), rng.randrange(0, 1500) if ok else 0
        chunk.append(
            UsageRecord(
                at=MONTH_START + timedelta(seconds=i * step),
                tool="chat_complete",
                model=model,
                provider=provider,
                upstream_model=model,
                outcome="ok" if ok else "rate_limit_exceeded",
                prompt_tokens=prompt,
                completion_tokens=completion,
                images=0,
                video_seconds=0.0,
                cost_usd=(prompt * 1.25 + completion * 10.0) / 1e6 if ok else 0.0,
                latency_ms=rng.uniform(200, 4000),
                caller=CALLERS[rng.randrange(len(CALLERS))],
                job_id=None,
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@asynccontextmanager
async def sqlite_store() -> AsyncIterator[tuple[Store, Callable[[], Any]]]:
    from mcp_server.store.sqlite import SQLiteStore
    from mcp_server.store.sqlite_usage import SQLITE

    with tempfile.TemporaryDirectory(prefix="genroute-bench-") as tmp:
        store = SQLiteStore(Path(tmp) / "genroute.db")
        await store.open()

        async def naive_scan() -> Any:
            sql = aggregate_sql(SQLITE, LEDGER, MONTH_QUERY)
            end = (MONTH_START + timedelta(seconds=MONTH_SECONDS)).timestamp()
            return await store.run(lambda conn: conn.execute(sql, [MONTH_START.timestamp(), end]).fetchall())

        try:
            yield store, naive_scan
        finally:
            await store.close()


@asynccontextmanager
async def postgres_store(url: str) -> AsyncIterator[tuple[Store, Callable[[], Any]]]:
    import psycopg

    from mcp_server.store.postgres import PostgresStore
    from mcp_server.store.postgres_usage import POSTGRES

    schema = f"genroute_bench_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStore(f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}")
    await store.open()

    async def naive_scan() -> Any:
        sql = aggregate_sql(POSTGRES, LEDGER, MONTH_QUERY)
        async with store.connection() as conn:
            cur = await conn.execute(sql, [MONTH_START, MONTH_START + timedelta(seconds=MONTH_SECONDS)])
            return await cur.fetchall()

    try:
        yield store, naive_scan
    finally:
        await store.close()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def fill(store: Store, count: int) -> float:
    started = time.perf_counter()
    done = 0
    gc.disable()  # a million short-lived records: the cycle collector would only slow the load down
    try:
        for chunk in records(count):
            await store.record_usage_batch(chunk)
            done += len(chunk)
            print(f"\r  filled {done:,}/{count:,}", end="", file=sys.stderr, flush=True)
    finally:
        gc.enable()
    print(file=sys.stderr)
    return time.perf_counter() - started


async def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    await call()  # warm caches: the figures are for a server that has been answering
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000.0)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))], 3),
        "max_ms": round(samples[-1], 3),
        "repeats": repeats,
    }


async def bench_backend(name: str, opened: Any, count: int, repeats: int) -> dict[str, Any]:
    catalog = Catalog([])
    async with opened as (store, naive_scan):
        print(f"{name}: filling {count:,} records", file=sys.stderr)
        fill_s = await fill(store, count)
        results: dict[str, Any] = {"fill_s": round(fill_s, 2), "records_per_s": round(count / fill_s), "queries": {}}
        for label, arguments in QUERIES.items():

            async def query(arguments: dict[str, str] = arguments) -> Any:
                return await build_report(store, catalog, monthly_usd=100.0, **arguments)

            results["queries"][label] = await timed(query, repeats)
            expected = (await query()).requests
            results["queries"][label]["requests_counted"] = expected
        results["naive_ledger_scan"] = await timed(naive_scan, max(3, repeats // 10))
    return results


def print_table(count: int, results: dict[str, Any]) -> None:
    print(f"\nget_usage over {count:,} records in one month (target: under {TARGET_MS:.0f} ms)\n")
    header = f"{'backend':<10} {'query':<32} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}  calls counted"
    print(header)
    print("-" * len(header))
    for backend, data in results.items():
        for label, q in data["queries"].items():
            row = f"{backend:<10} {label:<32} {q['p50_ms']:>9.2f} {q['p95_ms']:>9.2f} {q['max_ms']:>9.2f}"
            print(f"{row}  {q['requests_counted']:,}")
        n = data["naive_ledger_scan"]
        print(f"{backend:<10} {'(naive ledger scan, no roll-up)':<32} {n['p50_ms']:>9.2f} {n['p95_ms']:>9.2f}")
        print(f"{backend:<10} fill: {data['fill_s']:.1f} s ({data['records_per_s']:,} records/s)")
    print()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if args.backend in ("all", "sqlite"):
        results["sqlite"] = await bench_backend("sqlite", sqlite_store(), args.records, args.repeats)
    url = os.environ.get(PG_ENV)
    if args.backend in ("all", "postgres"):
        if url:
            results["postgres"] = await bench_backend("postgres", postgres_store(url), args.records, args.repeats)
        else:
            print(f'postgres: skipped ({PG_ENV} is not set; eval "$(bash .ci/postgres.sh)")', file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--backend", choices=["all", "sqlite", "postgres"], default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "usage.json")
    args = parser.parse_args(argv)
    results = anyio.run(run, args)
    print_table(args.records, results)
    slowest = max((q["p95_ms"] for data in results.values() for q in data["queries"].values()), default=0.0)
    document = {
        "benchmark": "usage",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "records": args.records,
        "target_ms": TARGET_MS,
        "slowest_p95_ms": slowest,
        "within_target": slowest < TARGET_MS,
        "backends": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {args.out}")
    return 0 if slowest < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
