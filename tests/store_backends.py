"""Both store backends for one test suite: SQLite always, PostgreSQL when GENROUTE_TEST_DATABASE_URL is set.

Each PostgreSQL test gets a schema of its own (created empty, dropped afterwards) through the URL's
`options=-csearch_path=...`, so tests never see each other's rows and need no database of their own.
conftest.py loads this module as a plugin, so every test may ask for `backend` or `database_settings`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mcp_server.store.base import Store

PG_ENV = "GENROUTE_TEST_DATABASE_URL"
PG_SKIP_REASON = f'PostgreSQL tests need a server: {PG_ENV} is not set (start one with: eval "$(bash .ci/postgres.sh)")'


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


needs_postgres = pytest.mark.skipif(postgres_url() is None, reason=PG_SKIP_REASON)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres, needs_postgres]),
]


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A database URL whose tables live in a new, empty schema, dropped when the block ends."""
    import psycopg

    base = postgres_url()
    assert base is not None, PG_SKIP_REASON
    schema = f"genroute_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_settings(backend: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The `[server]` keys that point genroute at this test's database (data_dir always, database_url for PG)."""
    settings: dict[str, Any] = {"data_dir": str(tmp_path / "data")}
    if backend == "sqlite":
        yield settings
        return
    with fresh_schema() as url:
        yield {**settings, "database_url": url}


def store_for(settings: dict[str, Any]) -> Store:
    """A store (not yet opened) on the database the settings name, as genroute itself would open it."""
    from mcp_server.config import parse_config
    from mcp_server.store import open_store_for

    return open_store_for(parse_config({"server": {**settings, "local_model": False}}))


@pytest.fixture
async def opened_store(database_settings: dict[str, Any]) -> AsyncIterator[Store]:
    """An open store on this test's database (either backend), closed afterwards."""
    opened = store_for(database_settings)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
