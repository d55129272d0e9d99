"""PostgreSQL's schema, step by step: applied in order under an advisory lock by PostgresStore.open; a new step
is appended, never edited, so every replica and every old database reaches the same schema."""

from __future__ import annotations

from mcp_server.store import media_index, postgres_keys, postgres_record, postgres_usage
from mcp_server.store.base import CALLER_IDENTITY_MIGRATION
from mcp_server.store.postgres_keycache import NOTIFY_MIGRATION

MIGRATIONS: list[str] = [
    # 1: video jobs
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        task_id TEXT,
        status TEXT NOT NULL,
        arguments JSONB NOT NULL,
        client_request_id TEXT,
        caller TEXT NOT NULL,
        progress DOUBLE PRECISION,
        result JSONB,
        error JSONB,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX jobs_request ON jobs (client_request_id, created_at);
    CREATE INDEX jobs_status ON jobs (status, updated_at);
    CREATE INDEX jobs_created ON jobs (created_at);
    """,
    # 2: usage ledger, its hourly roll-up, budget months and reservations
    postgres_usage.MIGRATION,
    # 3: HTTP API keys
    postgres_keys.MIGRATION,
    # 4: requests per caller and minute, for rate limits shared by replicas
    postgres_keys.RATE_MIGRATION,
    # 5: which replica tracks a video job, until when
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS owner TEXT, ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ;",
    # 6: provider cooldowns shared by replicas
    "CREATE TABLE IF NOT EXISTS provider_cooldowns"
    " (provider TEXT PRIMARY KEY, until TIMESTAMPTZ NOT NULL, reason TEXT NOT NULL);",
    # 7: jobs and usage belong to a key's stable identity, not its name
    CALLER_IDENTITY_MIGRATION,
    # 8: speech characters and transcribed audio seconds in the ledger and roll-ups (idempotent: may move on merge)
    postgres_usage.AUDIO_MIGRATION,
    # 9: shared settings (the media-link secret) and who made which media file
    media_index.postgres_migration(),
    # 10: per-key limits (budget, ceiling per call, model allowlist) and each key's spend per month
    postgres_keys.LIMITS_MIGRATION + postgres_usage.KEY_BUDGET_MIGRATION,
    # 11: which of a provider's keys (its variable's name) served each call
    "ALTER TABLE usage_ledger ADD COLUMN IF NOT EXISTS api_key_env TEXT;",
    # 12: the budget reservation as one server-side function (one round trip a call instead of three)
    postgres_usage.RESERVE_FUNCTION,
    # 13: a key's create, update or revoke is notified to every process, which caches lookups (postgres_keycache)
    NOTIFY_MIGRATION,
    # 14: a call's record and settlement as one server-side function (postgres_record)
    postgres_record.RECORD_FUNCTION,
]
