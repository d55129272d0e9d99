"""The store interface: durable state shared by every request (and, on PostgreSQL, by every replica).

One interface, two implementations (SQLite in data_dir by default, PostgreSQL with
`[server] database_url`). Callers never see SQL.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import anyio
from pydantic import BaseModel, Field, field_validator

from mcp_server.errors import Conflict
from mcp_server.store.job_record import FINISHED, JobRecord, JobStatus, VideoArguments, VideoResult
from mcp_server.store.media_index import CallFilter, MediaRecord
from mcp_server.store.usage import (
    BudgetStatus,
    GroupBy,
    KeyBudget,
    Reservation,
    UsageQuery,
    UsageRecord,
    UsageSummary,
    UsageTotals,
    utcnow,
)


class StoreUnavailable(Exception):
    """The database cannot be reached or written; the message is safe to show (no password, no SQL)."""


def jobs_filter(unfinished_only: bool, caller: str | None, param_marker: str) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause of a job listing and its parameters, in either store's parameter style."""
    conditions = ["status NOT IN ('completed', 'failed')"] if unfinished_only else []
    if caller is not None:
        conditions.append(f"caller = {param_marker}")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return where, (caller,) if caller is not None else ()


T = TypeVar("T")
RECORD_TIMEOUT_S = 10.0  # bound on writing a call's ledger record, cancelled or not


async def finish_write(write: Callable[[], Awaitable[T]]) -> T:
    """Run a ledger write to its end even while the calling task is being cancelled (the provider has answered:
    its record must not be lost), within RECORD_TIMEOUT_S."""
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + RECORD_TIMEOUT_S):
        return await write()
    raise StoreUnavailable(f"Writing the usage record timed out after {RECORD_TIMEOUT_S:.0f} s.")


class ApiKeyRecord(BaseModel):
    """An HTTP client's key. Only the SHA-256 of the key is stored; the key itself is shown once, at creation."""

    id: str
    name: str
    key_hash: str
    admin: bool = False
    rate_limit_per_min: int | None = None  # None: the config's [http] rate_limit_per_min; 0: unlimited
    monthly_usd: float | None = None  # this key's own monthly budget, on top of [budget] monthly_usd
    max_usd_per_call: float | None = None  # this key's own ceiling per call, on top of each model's
    models: list[str] | None = None  # ids, aliases or globs this key may use; None: every model
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_json(cls, value: object) -> object:
        """SQLite keeps the list as JSON text (PostgreSQL as a text[])."""
        return json.loads(value) if isinstance(value, str) else value


KEY_LIMIT_FIELDS = ("admin", "rate_limit_per_min", "monthly_usd", "max_usd_per_call", "models")


def key_name_taken(name: str) -> Conflict:
    """What both stores raise when an active key already has `name` (their unique index refused it)."""
    return Conflict(
        f"A key named '{name}' already exists. Revoke it first or pick another name.", code="key_exists", param="name"
    )


# Jobs and usage recorded before callers had stable identities (access/principals.py) carry a key's name. Rows
# whose name only ever belonged to one key move to that key's identity; names several keys have had, and genroute's
# own ('stdio', 'local'), stay as they are: admins still see them, no key does. Idempotent: a key name never holds
# ':', so an identity ('key:...') never matches one again.
CALLER_IDENTITY_MIGRATION = ";\n".join(
    f"UPDATE {table} SET caller = 'key:' || (SELECT k.id FROM api_keys k WHERE k.name = {table}.caller)"
    " WHERE caller IN (SELECT name FROM api_keys GROUP BY name HAVING COUNT(*) = 1)"
    " AND caller NOT IN ('stdio', 'local')"
    for table in ("jobs", "usage_ledger", "usage_hourly", "usage_daily")
)


class Store(ABC):
    # A ledger write may wait until the call's answer is sent (usage/held_writes.py): true of a store whose write,
    # once made, is what every reader sees next; not of one that other replicas read (they may be asked next)
    writes_after_answer: ClassVar[bool] = False

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to the current version."""

    @abstractmethod
    async def close(self) -> None: ...

    # --- video jobs ---
    @abstractmethod
    async def create_job(self, job: JobRecord, *, owner: str | None = None, lease_s: float = 0.0) -> JobRecord:
        """Insert; if `client_request_id` is set and a job with it exists since its 24 h window, return that one.
        With `owner`, the new job is leased to that process for `lease_s` seconds from the start (see claim_job)."""

    @abstractmethod
    async def update_job(self, job_id: str, **fields: Any) -> JobRecord | None: ...

    @abstractmethod
    async def claim_job(
        self, job_id: str, owner: str, lease_s: float, *, stopped: Sequence[str] = ()
    ) -> JobRecord | None:
        """Lease an unfinished job to the process `owner` for `lease_s` seconds, unless another process holds an
        unexpired lease on it: the job when `owner` holds the lease now, None when it is finished, unknown or
        tracked by another live process. One process at a time submits, polls and downloads a job. A lease held
        by one of the `stopped` holders (known to be gone, see video_jobs/owner.py) is taken at once."""

    @abstractmethod
    async def claim_orphaned_jobs(
        self, owner: str, lease_s: float, *, limit: int = 100, stopped: Sequence[str] = ()
    ) -> list[JobRecord]:
        """claim_job for every unfinished job whose lease ran out (or that never had one, or whose holder is one of
        `stopped`), oldest first, in one statement: a process's sweep for the jobs of processes that stopped."""

    @abstractmethod
    async def job_lease_holders(self) -> list[str]:
        """The holders of unexpired leases on unfinished jobs (to find among them processes that are gone)."""

    @abstractmethod
    async def renew_job_leases(self, owner: str, lease_s: float) -> int:
        """Extend the leases `owner` holds on unfinished jobs to `lease_s` seconds from now (0 releases them at
        once, for a clean stop); how many."""

    @abstractmethod
    async def get_job(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    async def find_job_by_request_id(self, client_request_id: str, caller: str, since: datetime) -> JobRecord | None:
        """`caller`'s job with this client_request_id created since `since` (another caller's never matches)."""

    @abstractmethod
    async def list_jobs(
        self, *, limit: int = 20, unfinished_only: bool = False, caller: str | None = None
    ) -> list[JobRecord]:
        """Newest first; only `caller`'s jobs when given."""

    @abstractmethod
    async def count_jobs_by_status(self) -> dict[str, int]:
        """How many jobs are in each status (those with none left out): `GET /metrics` reads it on every scrape,
        and the (status, updated_at) index answers it without reading the jobs themselves."""

    # --- API keys (HTTP access control) ---
    @abstractmethod
    async def create_key(self, key: ApiKeyRecord) -> ApiKeyRecord:
        """Insert; raises GatewayError(code="key_exists") when an unrevoked key already has this name."""

    @abstractmethod
    async def list_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """All keys, oldest first."""

    @abstractmethod
    async def revoke_key(self, name: str) -> ApiKeyRecord | None:
        """Revoke the unrevoked key called `name`; None when there is none."""

    @abstractmethod
    async def update_key(self, name: str, changes: dict[str, Any]) -> ApiKeyRecord | None:
        """Set some of KEY_LIMIT_FIELDS on the unrevoked key called `name`; the key as it is now, None when there
        is none. Running servers see the change on the key's next request."""

    @abstractmethod
    async def find_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The unrevoked key with this hash, or None."""

    @abstractmethod
    async def touch_key(self, key_id: str, when: datetime) -> None:
        """Record when a key was last used (callers throttle this; it is informational)."""

    @abstractmethod
    async def count_request(self, caller: str, window_start: int) -> tuple[int, int]:
        """Count one request by `caller` in the minute starting at `window_start` (epoch seconds, a multiple of
        60), for every process on this store: (requests in that minute, this one included; requests in the
        minute before). Older minutes, of every caller, are dropped as new ones start."""

    # --- provider cooldowns, shared by the processes on this store (reliability/shared_cooldowns.py) ---
    @abstractmethod
    async def share_cooldown(self, provider: str, until: datetime, reason: str) -> None:
        """Tell the other processes that `provider` cools down until `until` (a later cooldown stays)."""

    @abstractmethod
    async def shared_cooldowns(self) -> dict[str, tuple[datetime, str]]:
        """The cooldowns not yet over: provider -> (until, reason)."""

    # --- usage ledger (one record per provider call) ---
    @abstractmethod
    async def record_usage(self, record: UsageRecord, *, reservation_id: str | None = None) -> None:
        """Add one record in one transaction (the ledger row, and the settlement of the budget reservation made
        for the call when given). Completes even while the calling task is being cancelled, within
        RECORD_TIMEOUT_S (see `finish_write`); raises StoreUnavailable when it cannot."""

    @abstractmethod
    async def record_usage_batch(self, records: list[UsageRecord]) -> None:
        """Add many records in one transaction (imports and benchmarks); same effect as one by one."""

    @abstractmethod
    async def usage_summary(self, query: UsageQuery) -> UsageSummary:
        """Totals and a breakdown over [query.start, query.end), with the query's filters."""

    # --- budgets ---
    @abstractmethod
    async def budget_status(self, month: str, *, caller: str | None = None) -> BudgetStatus:
        """What `month` ("YYYY-MM", UTC) has spent so far and what calls in flight have reserved; with `caller`
        (a key's identity), that key's own share."""

    @abstractmethod
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
        """Atomically reserve `amount_usd` when spent + reserved + amount stays within `limit_usd` (None: no global
        limit); with `at_least`, reserve what is left instead when that is less but at least `at_least`
        (`amount_usd` of the answer says how much was granted). With `key`, the key's own month must hold it too,
        checked in the same transaction (`scope` of the answer says which limit refused or cut it).

        Concurrent callers (other tasks, processes or replicas) are serialised so the limits hold for all of
        them together. A reservation not settled within `ttl` (its process died) stops counting."""

    @abstractmethod
    async def release_reservation(self, reservation_id: str) -> None:
        """Drop a reservation without recording anything (the call never reached a provider)."""

    # --- shared settings, media records and the dashboard's listings (store/media_index.py) ---
    @abstractmethod
    async def shared_setting(self, name: str, candidate: str) -> str:
        """The value stored under `name`; when there is none, `candidate` is stored first. Replicas starting
        together agree: the first write wins and every one of them reads it back."""

    @abstractmethod
    async def add_media(self, record: MediaRecord) -> None:
        """Remember who made a saved file (a second record for the same id is ignored)."""

    @abstractmethod
    async def get_media(self, media_id: str) -> MediaRecord | None: ...

    @abstractmethod
    async def list_media(self, *, caller: str | None = None, limit: int = 50) -> list[MediaRecord]:
        """Newest first; only `caller`'s files when given."""

    @abstractmethod
    async def delete_media_before(self, before: datetime, *, limit: int = 1000) -> list[str]:
        """Drop up to `limit` records of files made before `before`, oldest first; their ids."""

    @abstractmethod
    async def recent_calls(self, wanted: CallFilter) -> list[UsageRecord]:
        """The newest ledger records matching `wanted`, newest first."""


__all__ = [
    "FINISHED",
    "ApiKeyRecord",
    "BudgetStatus",
    "CallFilter",
    "GroupBy",
    "JobRecord",
    "JobStatus",
    "KeyBudget",
    "MediaRecord",
    "Reservation",
    "Store",
    "StoreUnavailable",
    "UsageQuery",
    "UsageRecord",
    "UsageSummary",
    "UsageTotals",
    "VideoArguments",
    "VideoResult",
    "utcnow",
]
