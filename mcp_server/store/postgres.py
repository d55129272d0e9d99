"""PostgreSQL store (`[server] database_url`): jobs, ledger and budgets shared by several replicas.

psycopg 3, async, one connection pool per process. Imported only when a database_url is configured, so a stdio
server never pays for psycopg at start. Migrations are numbered like SQLite's and applied under an advisory lock,
so replicas starting together migrate once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from mcp_server.store import postgres_keys, postgres_media, postgres_record, postgres_usage
from mcp_server.store.base import (
    ApiKeyRecord,
    BudgetStatus,
    CallFilter,
    JobRecord,
    KeyBudget,
    MediaRecord,
    Reservation,
    Store,
    StoreUnavailable,
    UsageQuery,
    UsageRecord,
    UsageSummary,
    finish_write,
    jobs_filter,
)
from mcp_server.store.postgres_keycache import KeyCache
from mcp_server.store.postgres_migrations import MIGRATIONS

log = logging.getLogger("genroute.store")

MIGRATION_LOCK = 0x67656E726F757465  # "genroute": the advisory lock key held while migrating
_JSON_FIELDS = ("arguments", "result", "error")
_JOB_COLUMNS = tuple(JobRecord.model_fields)
POOL_MAX = 10
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 30


def describe_url(url: str) -> str:
    """The database URL without its password, for messages and logs."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', 'localhost')}{port}/{parts.get('dbname', '')}"


FRESH_S = 1.0  # see PostgresStore._check


class PostgresStore(Store):
    def __init__(self, url: str, *, max_connections: int = POOL_MAX) -> None:
        self.url = url
        self._returned: WeakKeyDictionary[AsyncConnection[Any], float] = WeakKeyDictionary()
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            open=False,
            timeout=30,
            check=self._check,
            reset=self._returned_now,
            configure=_configure,
            name="genroute",
        )
        self._keys = KeyCache(url)

    async def _returned_now(self, conn: AsyncConnection[Any]) -> None:
        self._returned[conn] = time.monotonic()

    async def _check(self, conn: AsyncConnection[Any]) -> None:
        """The pool's check before a connection is lent: a round trip to the server, only for a connection idle
        longer than FRESH_S (one a server restart or an idle timeout may have closed). The round trip on every
        checkout was two of a team call's twenty and ~1/3 of the store's client CPU; a connection back for under a
        second whose socket is still open is lent as is (a failure on it is StoreUnavailable, as on any other)."""
        returned = self._returned.get(conn)
        if returned is not None and time.monotonic() - returned < FRESH_S and not conn.closed and not conn.broken:
            return
        await AsyncConnectionPool.check_connection(conn)

    async def open(self) -> None:
        """Connect once directly (fails fast, with the server's reason), migrate, then open the pool."""
        try:
            conn = await AsyncConnection.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            async with conn:
                await _migrate(conn)
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S + 5)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            await self._pool.close()
            raise StoreUnavailable(
                f"Cannot use PostgreSQL at {describe_url(self.url)} ({self._reason(exc)}): check [server] "
                "database_url, that the server runs and that the user may log in."
            ) from None

    def _reason(self, exc: Exception) -> str:
        """The first line of the driver's message, with the URL's password removed should it appear."""
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        password = conninfo_to_dict(self.url).get("password")
        return reason.replace(str(password), "[redacted]") if password else reason

    @property
    def caching_keys(self) -> bool:
        """Whether key lookups are answered from this process's cache now (its change listener is connected)."""
        return self._keys.listening

    async def close(self) -> None:
        await self._keys.close()
        await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection; a database that went away becomes StoreUnavailable with a safe message."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL at {describe_url(self.url)} is unavailable.") from exc

    # --- jobs ---
    async def create_job(self, job: JobRecord, *, owner: str | None = None, lease_s: float = 0.0) -> JobRecord:
        async with self.connection() as conn, conn.transaction():
            if job.client_request_id:
                # replicas submitting the same request id at once: one inserts, the other finds it
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (job.client_request_id,))
                existing = await _find_job(
                    conn, job.client_request_id, job.caller, job.created_at - timedelta(hours=24)
                )
                if existing is not None:
                    return existing
            columns = ", ".join(_JOB_COLUMNS)
            values = ", ".join(f"%({c})s" for c in _JOB_COLUMNS)
            lease = "now() + make_interval(secs => %(lease_s)s)" if owner else "NULL"
            params = {**_to_params(job), "owner": owner, "lease_s": float(lease_s)}
            await conn.execute(
                f"INSERT INTO jobs ({columns}, owner, lease_until) VALUES ({values}, %(owner)s, {lease})", params
            )
        return job

    async def claim_job(
        self, job_id: str, owner: str, lease_s: float, *, stopped: Sequence[str] = ()
    ) -> JobRecord | None:
        """The database's clock decides whether a lease ran out, so replicas' clocks need not agree."""
        async with self.connection() as conn:
            return await _one_job(
                conn,
                "UPDATE jobs SET owner = %s, lease_until = now() + make_interval(secs => %s)"
                " WHERE id = %s AND status NOT IN ('completed', 'failed') AND (owner IS NULL OR owner = %s"
                " OR lease_until IS NULL OR lease_until <= now() OR owner = ANY(%s::text[])) RETURNING *",
                (owner, float(lease_s), job_id, owner, list(stopped)),
            )

    async def claim_orphaned_jobs(
        self, owner: str, lease_s: float, *, limit: int = 100, stopped: Sequence[str] = ()
    ) -> list[JobRecord]:
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "UPDATE jobs SET owner = %s, lease_until = now() + make_interval(secs => %s) WHERE id IN ("
                " SELECT id FROM jobs WHERE status NOT IN ('completed', 'failed')"
                " AND (lease_until IS NULL OR lease_until <= now() OR owner = ANY(%s::text[]))"
                " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING *",
                (owner, float(lease_s), list(stopped), limit),
            )
            return [JobRecord.model_validate(row) for row in await cur.fetchall()]

    async def job_lease_holders(self) -> list[str]:
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT owner FROM jobs WHERE status NOT IN ('completed', 'failed')"
                " AND owner IS NOT NULL AND lease_until > now()"
            )
            return [row[0] for row in await cur.fetchall()]

    async def renew_job_leases(self, owner: str, lease_s: float) -> int:
        async with self.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET lease_until = now() + make_interval(secs => %s)"
                " WHERE owner = %s AND status NOT IN ('completed', 'failed')",
                (float(lease_s), owner),
            )
            return cur.rowcount

    async def update_job(self, job_id: str, **fields: Any) -> JobRecord | None:
        async with self.connection() as conn, conn.transaction():
            current = await _one_job(conn, "SELECT * FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
            if current is None:
                return None
            updated = current.updated(fields)
            assignments = ", ".join(f"{c} = %({c})s" for c in _JOB_COLUMNS if c != "id")
            await conn.execute(f"UPDATE jobs SET {assignments} WHERE id = %(id)s", _to_params(updated))
        return updated

    async def get_job(self, job_id: str) -> JobRecord | None:
        async with self.connection() as conn:
            return await _one_job(conn, "SELECT * FROM jobs WHERE id = %s", (job_id,))

    async def find_job_by_request_id(self, client_request_id: str, caller: str, since: datetime) -> JobRecord | None:
        async with self.connection() as conn:
            return await _find_job(conn, client_request_id, caller, since)

    async def list_jobs(
        self, *, limit: int = 20, unfinished_only: bool = False, caller: str | None = None
    ) -> list[JobRecord]:
        where, params = jobs_filter(unfinished_only, caller, "%s")
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT * FROM jobs {where} ORDER BY created_at DESC LIMIT %s", (*params, limit))
            return [JobRecord.model_validate(row) for row in await cur.fetchall()]

    async def count_jobs_by_status(self) -> dict[str, int]:
        async with self.connection() as conn:
            cur = await conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            return {row[0]: row[1] for row in await cur.fetchall()}

    # --- provider cooldowns ---
    async def share_cooldown(self, provider: str, until: datetime, reason: str) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "INSERT INTO provider_cooldowns AS c (provider, until, reason) VALUES (%s, %s, %s)"
                " ON CONFLICT (provider) DO UPDATE SET until = excluded.until, reason = excluded.reason"
                " WHERE excluded.until > c.until",
                (provider, until, reason),
            )

    async def shared_cooldowns(self) -> dict[str, tuple[datetime, str]]:
        async with self.connection() as conn:
            cur = await conn.execute("SELECT provider, until, reason FROM provider_cooldowns WHERE until > now()")
            return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}

    # --- usage and budgets ---
    async def record_usage(self, record: UsageRecord, *, reservation_id: str | None = None) -> None:
        async def write() -> None:
            async with self.connection() as conn:
                await postgres_record.record_one(conn, record, reservation_id)

        await finish_write(write)

    async def record_usage_batch(self, records: list[UsageRecord]) -> None:
        if records:
            async with self.connection() as conn:
                await postgres_usage.record(conn, records, None)

    async def usage_summary(self, query: UsageQuery) -> UsageSummary:
        async with self.connection() as conn:
            return await postgres_usage.summary(conn, query)

    async def budget_status(self, month: str, *, caller: str | None = None) -> BudgetStatus:
        async with self.connection() as conn:
            return await postgres_usage.status(conn, month, caller)

    async def reserve_budget(
        self,
        month: str,
        limit_usd: float | None,
        amount_usd: float,
        *,
        at_least: float | None = None,
        ttl: timedelta = timedelta(hours=2),
        key: KeyBudget | None = None,
    ) -> Reservation:
        async with self.connection() as conn:
            return await postgres_usage.reserve(conn, month, limit_usd, amount_usd, ttl, at_least, key)

    async def release_reservation(self, reservation_id: str) -> None:
        async with self.connection() as conn:
            await postgres_usage.release(conn, reservation_id)

    # --- settings, media records, recent calls ---
    async def shared_setting(self, name: str, candidate: str) -> str:
        async with self.connection() as conn:
            return await postgres_media.shared_setting(conn, name, candidate)

    async def add_media(self, record: MediaRecord) -> None:
        async with self.connection() as conn:
            await postgres_media.add_media(conn, record)

    async def get_media(self, media_id: str) -> MediaRecord | None:
        async with self.connection() as conn:
            return await postgres_media.get_media(conn, media_id)

    async def list_media(self, *, caller: str | None = None, limit: int = 50) -> list[MediaRecord]:
        async with self.connection() as conn:
            return await postgres_media.list_media(conn, caller, limit)

    async def delete_media_before(self, before: datetime, *, limit: int = 1000) -> list[str]:
        async with self.connection() as conn:
            return await postgres_media.delete_media_before(conn, before, limit)

    async def recent_calls(self, wanted: CallFilter) -> list[UsageRecord]:
        async with self.connection() as conn:
            return await postgres_media.recent_calls(conn, wanted)

    # --- api keys ---
    async def create_key(self, key: ApiKeyRecord) -> ApiKeyRecord:
        async with self.connection() as conn:
            created = await postgres_keys.create(conn, key)
        self._keys.forget()  # this process's own change, at once; other processes hear it (NOTIFY_MIGRATION)
        return created

    async def list_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        async with self.connection() as conn:
            return await postgres_keys.list_all(conn, include_revoked)

    async def revoke_key(self, name: str) -> ApiKeyRecord | None:
        async with self.connection() as conn:
            revoked = await postgres_keys.revoke(conn, name)
        self._keys.forget()
        return revoked

    async def update_key(self, name: str, changes: dict[str, Any]) -> ApiKeyRecord | None:
        async with self.connection() as conn:
            updated = await postgres_keys.update(conn, name, changes)
        self._keys.forget()
        return updated

    async def find_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        async def fetch() -> ApiKeyRecord | None:
            async with self.connection() as conn:
                return await postgres_keys.find_by_hash(conn, key_hash)

        return await self._keys.lookup(key_hash, fetch)

    async def touch_key(self, key_id: str, when: datetime) -> None:
        async with self.connection() as conn:
            await postgres_keys.touch(conn, key_id, when)

    async def count_request(self, caller: str, window_start: int) -> tuple[int, int]:
        async with self.connection() as conn:
            return await postgres_keys.count_request(conn, caller, window_start)


async def _configure(conn: AsyncConnection[Any]) -> None:
    """Every pooled connection: no statement (lock waits included) may hold a tool call longer than this."""
    await conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'")


async def _migrate(conn: AsyncConnection[Any]) -> None:
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS genroute_schema_version (version INTEGER PRIMARY KEY)")
            cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM genroute_schema_version")
            row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if version >= len(MIGRATIONS):
                return
            await conn.execute(MIGRATIONS[version])
            await conn.execute("INSERT INTO genroute_schema_version (version) VALUES (%s)", (version + 1,))
            log.info("PostgreSQL schema migrated to version %d", version + 1)


def _to_params(job: JobRecord) -> dict[str, Any]:
    params = {name: getattr(job, name) for name in _JOB_COLUMNS}
    data = job.model_dump(mode="json", include=set(_JSON_FIELDS))
    for name in _JSON_FIELDS:
        params[name] = None if data[name] is None else Jsonb(data[name])
    return params


async def _one_job(conn: AsyncConnection[Any], sql: str, params: tuple[Any, ...]) -> JobRecord | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
    return None if row is None else JobRecord.model_validate(row)


async def _find_job(
    conn: AsyncConnection[Any], client_request_id: str, caller: str, since: datetime
) -> JobRecord | None:
    return await _one_job(
        conn,
        "SELECT * FROM jobs WHERE client_request_id = %s AND caller = %s AND created_at >= %s"
        " ORDER BY created_at DESC LIMIT 1",
        (client_request_id, caller, since),
    )
