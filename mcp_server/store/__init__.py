"""Durable state behind one interface: SQLite by default, PostgreSQL when `database_url` is set."""

from __future__ import annotations

from mcp_server.config import GatewayConfig
from mcp_server.store.base import ApiKeyRecord, JobRecord, Store, StoreUnavailable, VideoArguments, VideoResult


def open_store_for(config: GatewayConfig) -> Store:
    """The configured store, not yet opened (call `await store.open()`).

    PostgreSQL's driver is imported only here and only when configured: a stdio server starts without it.
    """
    if config.server.database_url:
        from mcp_server.store.postgres import PostgresStore

        return PostgresStore(config.server.database_url)
    from mcp_server.store.sqlite import SQLiteStore

    return SQLiteStore(config.server.resolved_data_dir() / "genroute.db")


async def probe_store(config: GatewayConfig) -> str | None:
    """Open and close the configured store: None when it works, else what is wrong (safe to print)."""
    store = open_store_for(config)
    try:
        await store.open()
    except StoreUnavailable as error:
        return str(error)
    await store.close()
    return None


__all__ = [
    "ApiKeyRecord",
    "JobRecord",
    "Store",
    "StoreUnavailable",
    "VideoArguments",
    "VideoResult",
    "open_store_for",
    "probe_store",
]
