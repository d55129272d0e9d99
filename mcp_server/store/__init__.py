"""Durable state behind one interface: SQLite by default, PostgreSQL when `database_url` is set."""

from __future__ import annotations

from mcp_server.config import GatewayConfig
from mcp_server.store.base import ApiKeyRecord, JobRecord, Store


def open_store_for(config: GatewayConfig) -> Store:
    """The configured store, not yet opened (call `await store.open()`)."""
    from mcp_server.store.sqlite import SQLiteStore

    return SQLiteStore(config.server.resolved_data_dir() / "genroute.db")


__all__ = ["ApiKeyRecord", "JobRecord", "Store", "open_store_for"]
