"""The store interface, one suite against both implementations: jobs, the usage ledger, budgets, migrations."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from mcp_server.errors import ErrorBody
from mcp_server.store.base import JobRecord, Store, UsageQuery, UsageRecord, UsageTotals, VideoArguments, VideoResult
from mcp_server.store.sqlite import MIGRATIONS, SQLiteStore
from mcp_server.store.usage import month_of
from mcp_server.video_jobs.records import public_view
from tests.store_backends import store_for

pytestmark = pytest.mark.anyio
T0 = datetime(2025, 3, 10, 0, 0, tzinfo=UTC)  # a Monday; records spread over the following days
RESULT = {
    "video": {
        "id": "kling-x.mp4",
        "uri": "media://kling-x.mp4",
        "path": "/m/kling-x.mp4",
        "mime_type": "video/mp4",
        "bytes": 9,
    },
    "url": "https://cdn.example/v.mp4",
    "duration": 5.0,
    "cost_usd": 0.5,
    "download_error": None,
}
TIMEOUT = {"message": "did not finish", "type": "timeout", "code": "job_timeout", "param": None, "status": None}


@pytest.fixture
def store(opened_store: Store) -> Store:
    return opened_store


def rec(at: datetime, **fields: Any) -> UsageRecord:
    base: dict[str, Any] = {"tool": "chat_complete", "model": "gpt-5.5", "provider": "arkroute", "upstream_model": "u"}
    return UsageRecord(at=at, **{**base, **fields})


def expected(records: list[UsageRecord], query: UsageQuery) -> tuple[UsageTotals, dict[str, UsageTotals]]:
    """The summary computed the slow, obvious way."""
    totals, breakdown = UsageTotals(), {}
    for r in records:
        if not (query.start <= r.at < query.end) or (query.model and r.model != query.model):
            continue
        if query.caller and r.caller != query.caller:
            continue
        key = r.at.strftime("%Y-%m-%d") if query.group_by == "day" else getattr(r, query.group_by)
        part = UsageTotals.of(r)
        breakdown[key] = breakdown[key].add(part) if key in breakdown else part
        totals = totals.add(part)
    return totals, breakdown


def assert_same(actual: UsageTotals, wanted: UsageTotals) -> None:
    floats = {"cost_usd", "video_seconds", "audio_seconds"}
    assert actual.model_dump(exclude=floats) == wanted.model_dump(exclude=floats)
    assert actual.cost_usd == pytest.approx(wanted.cost_usd, abs=1e-9)
    assert actual.video_seconds == pytest.approx(wanted.video_seconds, abs=1e-6)
    assert actual.audio_seconds == pytest.approx(wanted.audio_seconds, abs=1e-6)


def random_records(count: int, seed: int) -> list[UsageRecord]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        records.append(
            rec(
                T0 + timedelta(seconds=rng.uniform(0, 3 * 86400)),
                model=rng.choice(["gpt-5.5", "gpt-5.4", "nano-banana-2"]),
                provider=rng.choice(["arkroute", "arka"]),
                caller=rng.choice(["stdio", "alice", "bob"]),
                outcome=rng.choice(["ok", "ok", "ok", "rate_limit_exceeded"]),
                prompt_tokens=rng.randrange(0, 2000),
                completion_tokens=rng.randrange(0, 800),
                images=rng.randrange(0, 3),
                video_seconds=rng.choice([0.0, 5.0]),
                characters=rng.choice([0, rng.randrange(1, 4096)]),
                audio_seconds=rng.choice([0.0, round(rng.uniform(0, 600), 3)]),
                cost_usd=round(rng.uniform(0, 0.05), 6),
            )
        )
    return records


# --- api keys ---


async def test_api_keys_store_hashes_and_revoke_by_name(store: Store) -> None:
    from mcp_server.errors import GatewayError
    from mcp_server.store.base import ApiKeyRecord

    alice = await store.create_key(ApiKeyRecord(id="k1", name="alice", key_hash="h1", admin=True, rate_limit_per_min=5))
    await store.create_key(ApiKeyRecord(id="k2", name="bob", key_hash="h2"))
    with pytest.raises(GatewayError) as caught:
        await store.create_key(ApiKeyRecord(id="k3", name="alice", key_hash="h3"))
    assert caught.value.code == "key_exists"
    found = await store.find_key_by_hash("h1")
    assert found is not None and (found.name, found.admin, found.rate_limit_per_min) == ("alice", True, 5)
    await store.touch_key("k1", alice.created_at + timedelta(minutes=1))
    revoked = await store.revoke_key("alice")
    assert revoked is not None and revoked.revoked_at is not None
    assert await store.find_key_by_hash("h1") is None  # a revoked key stops working at once
    assert await store.revoke_key("alice") is None
    again = await store.create_key(ApiKeyRecord(id="k4", name="alice", key_hash="h4"))  # the name is free again
    assert again.name == "alice"
    assert [k.name for k in await store.list_keys(include_revoked=False)] == ["bob", "alice"]
    assert len(await store.list_keys()) == 3


# --- jobs ---


async def test_jobs_round_trip_and_request_id_deduplication(store: Store) -> None:
    arguments = VideoArguments(prompt="a cat", duration=5)
    job = JobRecord(
        id="job-1",
        provider="arkroute",
        model="kling",
        upstream_model="kling-v2",
        client_request_id="r1",
        arguments=arguments,
    )
    assert (await store.create_job(job)).id == "job-1"
    again = JobRecord(id="job-2", provider="arkroute", model="kling", upstream_model="kling-v2", client_request_id="r1")
    assert (await store.create_job(again)).id == "job-1"  # same request id within 24 h: the first job
    assert await store.get_job("job-2") is None

    updated = await store.update_job("job-1", status="running", task_id="t-9", progress=0.4)
    assert updated is not None and updated.status == "running"
    loaded = await store.get_job("job-1")
    assert loaded is not None
    assert (loaded.task_id, loaded.progress, loaded.arguments) == ("t-9", 0.4, arguments)
    assert loaded.updated_at >= loaded.created_at
    assert await store.update_job("missing", status="failed") is None

    await store.create_job(JobRecord(id="job-3", provider="p", model="m", upstream_model="u", status="completed"))
    assert [j.id for j in await store.list_jobs(unfinished_only=True)] == ["job-1"]
    assert {j.id for j in await store.list_jobs()} == {"job-1", "job-3"}
    since = datetime.now(UTC) - timedelta(hours=1)
    found = await store.find_job_by_request_id("r1", "stdio", since)
    assert found is not None and found.id == "job-1"
    assert await store.find_job_by_request_id("r1", "stdio", datetime.now(UTC) + timedelta(hours=1)) is None
    # another caller's request id is its own: it never finds (or reuses) this caller's job
    assert await store.find_job_by_request_id("r1", "bob", since) is None
    theirs = JobRecord(id="job-4", provider="p", model="m", upstream_model="u", client_request_id="r1", caller="bob")
    assert (await store.create_job(theirs)).id == "job-4"
    assert [j.id for j in await store.list_jobs(caller="bob")] == ["job-4"]
    assert [j.id for j in await store.list_jobs(caller="bob", unfinished_only=True)] == ["job-4"]
    assert {j.id for j in await store.list_jobs(caller="stdio")} == {"job-1", "job-3"}
    assert await store.count_jobs_by_status() == {"running": 1, "completed": 1, "submitting": 1}  # for /metrics


# Rows as genroute wrote them while a job's arguments, result and error were plain JSON objects built by hand.
OLD_ARGUMENTS = {"prompt": "a cat", "duration": 5.0, "aspect_ratio": "16:9", "has_image": True}
OLD_ROWS = [
    ("done", "completed", {**OLD_ARGUMENTS, "image_file": "done.png", "idempotency_key": "genroute-1"}, RESULT, None),
    ("late", "failed", {**OLD_ARGUMENTS, "idempotency_key": "genroute-2"}, None, TIMEOUT),
    ("bare", "running", {"prompt": "a dog", "duration": 5}, None, None),  # before has_image and the input file
]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _insert_old_rows(settings: dict[str, Any]) -> None:
    columns = "id, kind, provider, model, upstream_model, status, arguments, caller, result, error"
    when = datetime.now(UTC)
    rows = [
        (
            job_id,
            "video",
            "arkroute",
            "kling",
            "kling-v2",
            status,
            json.dumps(arguments),
            "stdio",
            *map(_json, (result, error)),
        )
        for job_id, status, arguments, result, error in OLD_ROWS
    ]
    if "database_url" not in settings:
        with sqlite3.connect(Path(settings["data_dir"]) / "genroute.db") as conn:
            sql = f"INSERT INTO jobs ({columns}, created_at, updated_at) VALUES ({', '.join('?' * 12)})"
            conn.executemany(sql, [(*row, when.timestamp(), when.timestamp()) for row in rows])
        return
    import psycopg

    with psycopg.connect(settings["database_url"], autocommit=True, connect_timeout=10) as conn, conn.cursor() as cur:
        sql = f"INSERT INTO jobs ({columns}, created_at, updated_at) VALUES ({', '.join(['%s'] * 12)})"
        cur.executemany(sql, [(*row, when, when) for row in rows])


async def test_job_rows_written_before_the_typed_records_still_read(
    store: Store, database_settings: dict[str, Any]
) -> None:
    _insert_old_rows(database_settings)
    done, late, bare = [await store.get_job(job_id) for job_id in ("done", "late", "bare")]
    assert done is not None and late is not None and bare is not None
    assert done.arguments == VideoArguments(**OLD_ARGUMENTS, image_file="done.png", idempotency_key="genroute-1")
    assert done.result == VideoResult.model_validate(RESULT) and done.result.video is not None
    assert done.result.video.uri == "media://kling-x.mp4" and done.error is None
    assert late.error == ErrorBody(**TIMEOUT) and late.result is None
    assert bare.arguments == VideoArguments(prompt="a dog", duration=5)
    # clients see what they saw before (jobs:// resources: no idempotency key, no input file)
    assert public_view(done)["arguments"] == OLD_ARGUMENTS
    assert public_view(done)["result"] == RESULT and public_view(late)["error"] == TIMEOUT
    # and the engine goes on with them
    finished = await store.update_job("bare", status="completed", result=VideoResult(url="https://x/v.mp4"))
    assert finished is not None and await store.get_job("bare") == finished
    assert {job.id for job in await store.list_jobs()} == {"done", "late", "bare"}


async def test_a_job_update_is_checked_against_the_record_shape(store: Store) -> None:
    await store.create_job(JobRecord(id="j", provider="p", model="m", upstream_model="u"))
    with pytest.raises(ValidationError):
        await store.update_job("j", result={"video": "not a media item"})
    with pytest.raises(ValidationError):
        await store.update_job("j", status="lost")
    assert (await store.get_job("j")) == (await store.list_jobs())[0]


async def test_concurrent_submissions_with_one_request_id_make_one_job(store: Store) -> None:
    ids: list[str] = []

    async def submit(n: int) -> None:
        job = JobRecord(id=f"job-{n}", provider="p", model="m", upstream_model="u", client_request_id="same")
        ids.append((await store.create_job(job)).id)

    async with anyio.create_task_group() as group:
        for n in range(8):
            group.start_soon(submit, n)
    assert len(set(ids)) == 1


# --- ledger ---


@pytest.mark.parametrize("group_by", ["model", "day", "provider", "caller"])
async def test_summary_matches_the_records_for_every_grouping(store: Store, group_by: str) -> None:
    records = random_records(300, seed=1)
    await store.record_usage_batch(records[:200])
    for r in records[200:]:
        await store.record_usage(r)
    query = UsageQuery(start=T0, end=T0 + timedelta(days=3), group_by=group_by)  # type: ignore[arg-type]
    summary = await store.usage_summary(query)
    totals, breakdown = expected(records, query)
    assert_same(summary.totals, totals)
    assert summary.totals.requests == 300
    assert set(summary.breakdown) == set(breakdown)
    for key, part in breakdown.items():
        assert_same(summary.breakdown[key], part)


async def test_summary_is_exact_at_any_boundary_and_filter(store: Store) -> None:
    """Whole hours come from the roll-up, partial ones from the ledger: every window must match the records."""
    records = random_records(400, seed=2)
    await store.record_usage_batch(records)
    rng = random.Random(3)
    for _ in range(25):
        start = T0 + timedelta(seconds=rng.uniform(-3600, 3 * 86400))
        end = start + timedelta(seconds=rng.choice([30, 1800, 3600, 7300, rng.uniform(0, 3 * 86400)]))
        query = UsageQuery(
            start=start,
            end=end,
            model=rng.choice([None, "gpt-5.4"]),
            caller=rng.choice([None, "alice"]),
            group_by=rng.choice(["model", "day", "provider", "caller"]),
        )
        summary = await store.usage_summary(query)
        totals, breakdown = expected(records, query)
        assert_same(summary.totals, totals)
        assert set(summary.breakdown) == set(breakdown), query


async def test_empty_period_and_no_records(store: Store) -> None:
    summary = await store.usage_summary(UsageQuery(start=T0, end=T0))
    assert summary.totals.requests == 0 and summary.breakdown == {}
    summary = await store.usage_summary(UsageQuery(start=T0, end=T0 + timedelta(days=30)))
    assert summary.totals == UsageTotals()


# --- budgets ---


async def test_month_spend_follows_the_ledger(store: Store) -> None:
    now = datetime.now(UTC)
    records = [rec(now, cost_usd=0.1), rec(now, cost_usd=0.2, outcome="server_error"), rec(now, cost_usd=0.0)]
    for r in records:
        await store.record_usage(r)
    await store.record_usage(rec(now - timedelta(days=40), cost_usd=5.0))  # another month
    status = await store.budget_status(month_of(now))
    assert status.spent_usd == pytest.approx(0.3)
    assert status.reserved_usd == 0.0


async def test_reservations_hold_budget_until_settled_to_the_actual_cost(store: Store) -> None:
    month = month_of(datetime.now(UTC))
    first = await store.reserve_budget(month, 1.0, 0.6)
    assert first.granted and first.id
    second = await store.reserve_budget(month, 1.0, 0.6)
    assert not second.granted and second.id is None
    assert (second.spent_usd, second.reserved_usd) == (0.0, pytest.approx(0.6))
    assert (await store.budget_status(month)).reserved_usd == pytest.approx(0.6)

    await store.record_usage(rec(datetime.now(UTC), cost_usd=0.25), reservation_id=first.id)  # settles
    status = await store.budget_status(month)
    assert (status.spent_usd, status.reserved_usd) == (pytest.approx(0.25), 0.0)
    assert (await store.reserve_budget(month, 1.0, 0.75)).granted  # 0.25 + 0.75 fits exactly
    assert not (await store.reserve_budget(month, 1.0, 0.01)).granted


async def test_release_and_expiry_free_a_reservation(store: Store) -> None:
    month = month_of(datetime.now(UTC))
    held = await store.reserve_budget(month, 1.0, 1.0)
    assert held.granted and held.id
    assert not (await store.reserve_budget(month, 1.0, 0.5)).granted
    await store.release_reservation(held.id)
    assert (await store.budget_status(month)).reserved_usd == 0.0
    # a reservation whose process died stops counting once its time is up
    dead = await store.reserve_budget(month, 1.0, 1.0, ttl=timedelta(0))
    assert dead.granted
    assert (await store.reserve_budget(month, 1.0, 1.0)).granted


async def test_a_reservation_that_can_do_with_less_takes_what_is_left(store: Store) -> None:
    month = month_of(datetime.now(UTC))
    assert (await store.reserve_budget(month, 1.0, 0.7)).granted
    partial = await store.reserve_budget(month, 1.0, 0.5, at_least=0.2)  # 0.3 left: enough
    assert partial.granted and partial.amount_usd == pytest.approx(0.3)
    short = await store.reserve_budget(month, 1.0, 0.5, at_least=0.2)  # nothing left
    assert not short.granted and (short.spent_usd, short.reserved_usd) == (0.0, pytest.approx(1.0))
    assert (await store.budget_status(month)).reserved_usd == pytest.approx(1.0)


async def race_reservations(settings: dict[str, Any], calls: int, amount: float, at_least: float | None) -> list[float]:
    """`calls` reservations against a $1 budget at once, spread over four store instances (four connections or
    pools, as replicas have); the amounts granted, after checking that they are all that is reserved."""
    stores = [store_for(settings) for _ in range(4)]
    for s in stores:
        await s.open()
    month = month_of(datetime.now(UTC))
    held: list[float] = []
    try:

        async def reserve(s: Store) -> None:
            reservation = await s.reserve_budget(month, 1.0, amount, at_least=at_least)
            if reservation.granted and reservation.id:
                held.append(reservation.amount_usd)

        async with anyio.create_task_group() as group:
            for n in range(calls):
                group.start_soon(reserve, stores[n % 4])
        assert (await stores[0].budget_status(month)).reserved_usd == pytest.approx(sum(held))
    finally:
        for s in stores:
            await s.close()
    return held


async def test_concurrent_reservations_never_pass_the_limit(database_settings: dict[str, Any]) -> None:
    assert await race_reservations(database_settings, 100, 0.1, None) == [0.1] * 10


async def test_concurrent_partial_reservations_share_the_last_of_a_budget(database_settings: dict[str, Any]) -> None:
    """Each asks for 0.3 and makes do with 0.05: three whole ones, then one gets the 0.1 left; never more."""
    held = await race_reservations(database_settings, 40, 0.3, 0.05)
    assert sorted(held) == [pytest.approx(0.1), 0.3, 0.3, 0.3]


# --- migrations and reopening ---


async def test_reopening_keeps_every_record(database_settings: dict[str, Any]) -> None:
    first = store_for(database_settings)
    await first.open()
    await first.record_usage_batch(random_records(50, seed=4))
    await first.create_job(JobRecord(id="j", provider="p", model="m", upstream_model="u"))
    await first.close()
    second = store_for(database_settings)
    await second.open()
    try:
        summary = await second.usage_summary(UsageQuery(start=T0, end=T0 + timedelta(days=3)))
        assert summary.totals.requests == 50
        assert await second.get_job("j") is not None
    finally:
        await second.close()


async def test_sqlite_database_from_version_1_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "genroute.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version=1")
    conn.execute(
        "INSERT INTO jobs VALUES ('old', 'video', 'p', 'm', 'u', NULL, 'running', '{}', NULL, 'stdio', NULL, NULL,"
        " NULL, 0, 0)"
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert (await store.get_job("old")) is not None
        await store.record_usage(rec(datetime.now(UTC), cost_usd=0.5))
        assert (await store.budget_status(month_of(datetime.now(UTC)))).spent_usd == 0.5
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


async def test_two_processes_opening_a_fresh_database_migrate_it_once(database_settings: dict[str, Any]) -> None:
    stores = [store_for(database_settings) for _ in range(3)]
    async with anyio.create_task_group() as group:
        for s in stores:
            group.start_soon(s.open)
    try:
        await stores[0].record_usage(rec(T0))
        assert (await stores[2].usage_summary(UsageQuery(start=T0, end=T0 + timedelta(hours=1)))).totals.requests == 1
    finally:
        for s in stores:
            await s.close()


async def test_sqlite_ledger_write_waits_for_another_writer_without_stalling_the_loop(tmp_path: Path) -> None:
    """The inline write path must fall back to waiting (in the store's thread) when another connection, as a
    replica or `genroute keys` would, holds the write lock; meanwhile the event loop keeps running."""
    store = SQLiteStore(tmp_path / "genroute.db")
    await store.open()
    other = sqlite3.connect(tmp_path / "genroute.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ticks = 0
        written = anyio.Event()

        async def write() -> None:
            await store.record_usage(rec(T0, cost_usd=0.25))
            written.set()

        async with anyio.create_task_group() as group:
            group.start_soon(write)
            for _ in range(20):  # the loop still runs while the write waits for the lock
                await anyio.sleep(0.01)
                ticks += 1
            assert not written.is_set()
            other.execute("COMMIT")
            with anyio.fail_after(10):
                await written.wait()
        assert ticks == 20
        summary = await store.usage_summary(UsageQuery(start=T0, end=T0 + timedelta(hours=1)))
        assert summary.totals.requests == 1 and summary.totals.cost_usd == pytest.approx(0.25)
    finally:
        other.close()
        await store.close()


async def test_sqlite_wal_is_checkpointed_under_a_stream_of_ledger_writes(tmp_path: Path) -> None:
    """Ledger writes never checkpoint on the event loop; the store's thread must, or the WAL grows forever."""
    from mcp_server.store.sqlite import MAINTAIN_EVERY

    store = SQLiteStore(tmp_path / "genroute.db")
    await store.open()
    try:
        for batch in range(8):
            for i in range(MAINTAIN_EVERY):
                await store.record_usage(rec(T0 + timedelta(seconds=batch * MAINTAIN_EVERY + i)))
            await store.run(lambda conn: None)  # let the queued checkpoint finish
        wal = tmp_path / "genroute.db-wal"
        records = 8 * MAINTAIN_EVERY
        # A passive checkpoint lets the next writer restart the WAL from its start, so it stays near the size
        # of one checkpoint interval instead of holding every page written since the database opened.
        pages = wal.stat().st_size / 4096
        assert pages < 4 * MAINTAIN_EVERY * 5, pages
        summary = await store.usage_summary(UsageQuery(start=T0, end=T0 + timedelta(days=1)))
        assert summary.totals.requests == records
    finally:
        await store.close()


async def test_sqlite_roll_ups_are_folded_in_the_background_and_by_every_reader(tmp_path: Path) -> None:
    """A call's record is one ledger INSERT; the roll-ups catch up in the store's thread every MAINTAIN_EVERY
    records, and a reader folds what is left first, so a summary never misses a committed record."""
    from mcp_server.store.sqlite import MAINTAIN_EVERY

    def mark_and_last(conn: sqlite3.Connection) -> tuple[int, int]:
        mark = conn.execute("SELECT ledger_id FROM usage_folded").fetchone()[0]
        return mark, conn.execute("SELECT MAX(id) FROM usage_ledger").fetchone()[0]

    store = SQLiteStore(tmp_path / "genroute.db")
    await store.open()
    try:
        records = [rec(T0 + timedelta(minutes=i), cost_usd=0.01) for i in range(MAINTAIN_EVERY + 10)]
        for r in records[:MAINTAIN_EVERY]:
            await store.record_usage(r)
        assert await store.run(mark_and_last) == (MAINTAIN_EVERY, MAINTAIN_EVERY)  # queued behind the fold
        for r in records[MAINTAIN_EVERY:]:
            await store.record_usage(r)
        mark, last = await store.run(mark_and_last)
        assert (mark, last) == (MAINTAIN_EVERY, MAINTAIN_EVERY + 10)
        # whole days and hours come from the roll-ups: the ten unfolded rows must be in them when read
        query = UsageQuery(start=T0 - timedelta(days=1), end=T0 + timedelta(days=2), group_by="day")
        summary = await store.usage_summary(query)
        totals, breakdown = expected(records, query)
        assert_same(summary.totals, totals)
        assert {k: v.requests for k, v in summary.breakdown.items()} == {k: v.requests for k, v in breakdown.items()}
        assert await store.run(mark_and_last) == (last, last)
    finally:
        await store.close()


async def test_sqlite_database_from_version_3_keeps_its_roll_ups(tmp_path: Path) -> None:
    """Before version 4 every record updated the roll-ups itself: the migration marks those rows folded, so
    they are not counted twice."""
    path = tmp_path / "genroute.db"
    store = SQLiteStore(path)
    await store.open()
    await store.record_usage_batch([rec(T0 + timedelta(hours=i), cost_usd=0.5) for i in range(30)])
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE usage_folded")
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        summary = await store.usage_summary(UsageQuery(start=T0, end=T0 + timedelta(days=2)))
        assert summary.totals.requests == 30 and summary.totals.cost_usd == pytest.approx(15.0)
        assert (await store.budget_status(month_of(T0))).spent_usd == pytest.approx(15.0)
    finally:
        await store.close()


async def test_request_counts_are_shared_per_caller_and_minute(database_settings: dict[str, Any]) -> None:
    """Rate-limit counts: two stores on one database (two replicas) count into the same minute; a new minute
    reports the one before and drops the older ones."""
    first, second = store_for(database_settings), store_for(database_settings)
    await first.open()
    await second.open()
    try:
        minute = 1_800_000_000 - 1_800_000_000 % 60
        assert await first.count_request("alice", minute) == (1, 0)
        assert await second.count_request("alice", minute) == (2, 0)
        assert await first.count_request("bob", minute) == (1, 0)  # callers are counted apart
        assert await second.count_request("alice", minute) == (3, 0)
        assert await first.count_request("alice", minute + 60) == (1, 3)
        assert await second.count_request("alice", minute + 60) == (2, 3)
        assert await first.count_request("alice", minute + 180) == (1, 0)  # a gap: nothing in the minute before
        assert await second.count_request("alice", minute + 60) == (1, 0)  # minutes before the previous are gone
        assert await second.count_request("bob", minute) == (1, 0)  # everyone's, also of callers not seen since
    finally:
        await first.close()
        await second.close()


async def test_a_job_is_leased_to_one_process_at_a_time(store: Store) -> None:
    job = JobRecord(id="job-lease", provider="p", model="m", upstream_model="u")
    await store.create_job(job, owner="replica-a", lease_s=30)
    assert await store.claim_job("job-lease", "replica-b", 30) is None  # a's lease holds
    renewed = await store.claim_job("job-lease", "replica-a", 30)  # the holder renews
    assert renewed is not None and renewed.id == "job-lease" and renewed.status == "submitting"
    assert await store.renew_job_leases("replica-a", 30) == 1
    assert await store.renew_job_leases("replica-b", 30) == 0
    assert await store.renew_job_leases("replica-a", 0) == 1  # released (a clean stop)
    taken = await store.claim_job("job-lease", "replica-b", 30)
    assert taken is not None and taken.model_dump() == renewed.model_dump()
    assert await store.claim_job("job-lease", "replica-a", 30) is None  # b holds it now
    await store.update_job("job-lease", status="completed")
    assert await store.claim_job("job-lease", "replica-b", 30) is None  # a finished job is nobody's
    assert await store.renew_job_leases("replica-b", 30) == 0
    assert await store.claim_job("no-such-job", "replica-a", 30) is None


async def test_a_lapsed_lease_can_be_taken_over(store: Store) -> None:
    def job(job_id: str, **fields: Any) -> JobRecord:
        return JobRecord(id=job_id, provider="p", model="m", upstream_model="u", **fields)

    await store.create_job(job("job-lapse"), owner="a", lease_s=1)
    await store.create_job(job("job-held"), owner="a", lease_s=30)
    await store.create_job(job("job-free"))  # written without an owner (before leases existed): nobody's
    await store.create_job(job("job-done", status="completed"))
    assert await store.claim_job("job-lapse", "b", 30) is None
    await anyio.sleep(1.2)
    swept = await store.claim_orphaned_jobs("b", 30)
    assert sorted(j.id for j in swept) == ["job-free", "job-lapse"]
    assert await store.claim_orphaned_jobs("c", 30) == []  # b holds them now
    assert await store.claim_job("job-lapse", "b", 30) is not None
    assert await store.claim_job("job-held", "b", 30) is None


async def test_provider_cooldowns_are_shared_and_the_later_one_stays(store: Store) -> None:
    now = datetime.now(UTC)
    await store.share_cooldown("arkroute", now + timedelta(seconds=30), "HTTP 401")
    await store.share_cooldown("arkroute", now + timedelta(seconds=10), "3 of 3 failed")  # ends sooner: ignored
    await store.share_cooldown("backup", now - timedelta(seconds=1), "over")
    shared = await store.shared_cooldowns()
    assert set(shared) == {"arkroute"}  # a cooldown that is over is not shared
    until, reason = shared["arkroute"]
    assert reason == "HTTP 401" and abs((until - now).total_seconds() - 30) < 0.01
    await store.share_cooldown("arkroute", now + timedelta(seconds=60), "again")
    assert (await store.shared_cooldowns())["arkroute"][1] == "again"
