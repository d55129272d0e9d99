"""Jobs and usage belong to a stable identity per key and per OAuth principal, not to a name (a real
`genroute serve --http`), the ledger still reads in names, and databases from before move over (both stores)."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from emulator.access import AuthorizationServer, ThreadedServer
from mcp_server.store import sqlite
from mcp_server.store.base import ApiKeyRecord, JobRecord, UsageQuery, UsageRecord, utcnow
from tests.store_backends import store_for
from tests.support import GatewayProcess, child_env, http_gateway, write_config
from tests.support_access import client, keys, new_key
from tests.support_media import VIDEO_MODEL, media_config

VIDEO = {"prompt": "a quiet harbour", "model": VIDEO_MODEL, "wait_s": 0, "client_request_id": "req-1"}


async def _jobs_seen(session: Any, job_id: str) -> tuple[bool, list[Any]]:
    """Whether `session` can read the job by id, and what jobs://recent lists for it."""
    status = await session.call_tool("get_video_status", {"job_id": job_id, "wait_s": 0})
    recent = json.loads((await session.read_resource("jobs://recent")).contents[0].text)["jobs"]
    return not status.is_error, recent


@pytest.mark.anyio
async def test_a_key_created_again_under_a_revoked_name_is_someone_new(
    config_data: dict[str, Any], tmp_path: Path
) -> None:
    config_path = write_config(tmp_path / "genroute.toml", media_config(config_data))
    first = new_key(config_path, "alice")
    root = new_key(config_path, "root", "--admin")
    with http_gateway(config_path, auth=True) as gateway:
        async with client(gateway.mcp_url, first) as session:
            job_id = (await session.call_tool("generate_video", VIDEO)).structured_content["job_id"]
            assert not (await session.call_tool("chat_complete", {"prompt": "secret plans"})).is_error
        assert keys(config_path, "revoke", "alice").returncode == 0
        second = new_key(config_path, "alice")
        async with client(gateway.mcp_url, second) as session:
            readable, recent = await _jobs_seen(session, job_id)
            own_usage = (await session.call_tool("get_usage", {})).structured_content
            again = (await session.call_tool("generate_video", VIDEO)).structured_content
        async with client(gateway.mcp_url, root) as session:
            by_caller = (await session.call_tool("get_usage", {"group_by": "caller"})).structured_content
            filtered = (await session.call_tool("get_usage", {"caller": "alice"})).structured_content
    assert not readable and recent == []  # the old alice's job, prompt and result stay hers
    assert own_usage["requests"] == 0
    assert again["job_id"] != job_id and not again["deduplicated"]  # her request id is not the old one's
    # the ledger reads in names; the two alices apart by the start of their ids (as `genroute keys list` shows)
    names = sorted(by_caller["breakdown"])
    assert len(names) == 2 and all(name.startswith("alice#") for name in names), names
    assert sum(row["requests"] for row in by_caller["breakdown"].values()) == 3
    assert filtered["requests"] == 1 and filtered["caller"].startswith("alice#")  # a name means its active key
    listing = keys(config_path, "list").stdout
    assert all(name.split("#")[1] in listing for name in names)


def test_genroute_own_caller_names_are_not_key_names(config_path: Path) -> None:
    """`stdio` and `local` are the callers over stdio and `--no-auth`: a key by that name would read like them."""
    for name in ("stdio", "local", "Local"):
        refused = keys(config_path, "create", name)
        assert refused.returncode == 1 and "reserved" in refused.stderr and refused.stdout == "", name
    assert keys(config_path, "create", "localhost").returncode == 0


@pytest.mark.anyio
async def test_an_oauth_client_is_not_the_user_whose_subject_it_shares(
    config_data: dict[str, Any], tmp_path: Path
) -> None:
    """A client-credentials token (no subject) whose client_id equals a user's subject sees none of that user's
    jobs or usage: users and clients are kept in separate namespaces."""
    authorization = AuthorizationServer()
    with ThreadedServer(authorization.app()) as issuer:
        config_path = tmp_path / "genroute.toml"
        process = GatewayProcess(config_path, auth=True, env=child_env())
        audience = {"active": True, "aud": process.mcp_url, "scope": "mcp"}
        authorization.tokens = {
            "tok-user": {**audience, "sub": "app-x", "client_id": "web"},
            "tok-client": {**audience, "client_id": "app-x"},
        }
        config_data["http"] = {
            "oauth": {
                "issuer_url": issuer.url,
                "introspection_url": issuer.url + "/introspect",
                "resource_url": process.mcp_url,
            }
        }
        write_config(config_path, media_config(config_data))
        with process:
            async with client(process.mcp_url, "tok-user") as session:
                job_id = (await session.call_tool("generate_video", VIDEO)).structured_content["job_id"]
                user_usage = (await session.call_tool("get_usage", {})).structured_content
            async with client(process.mcp_url, "tok-client") as session:
                readable, recent = await _jobs_seen(session, job_id)
                client_usage = (await session.call_tool("get_usage", {})).structured_content
    assert not readable and recent == []
    assert user_usage["requests"] == 1 and client_usage["requests"] == 0


@pytest.mark.anyio
async def test_jobs_and_usage_recorded_by_name_move_to_the_one_key_that_had_it(
    database_settings: dict[str, Any],
) -> None:
    """Databases from before: rows of a name only one key ever had go to that key's identity (roll-ups too);
    a name two keys have had, and genroute's own callers, stay as they were. Running the step again changes
    nothing."""
    store = store_for(database_settings)
    await store.open()
    try:
        alice = await store.create_key(ApiKeyRecord(id="a" * 32, name="alice", key_hash="h1"))
        await store.create_key(ApiKeyRecord(id="b" * 32, name="bob", key_hash="h2", revoked_at=utcnow()))
        await store.create_key(ApiKeyRecord(id="c" * 32, name="bob", key_hash="h3"))
        await store.create_key(ApiKeyRecord(id="d" * 32, name="stdio", key_hash="h4"))  # allowed until now
        at = utcnow() - timedelta(days=2)
        for n, caller in enumerate(("alice", "alice", "bob", "stdio")):
            job = JobRecord(id=f"job{n}", provider="p", model="m", upstream_model="u", caller=caller)
            await store.create_job(job)
            record = UsageRecord(at=at, tool="chat", model="m", provider="p", upstream_model="u", caller=caller)
            await store.record_usage(record.model_copy(update={"cost_usd": 0.5}))
        for _ in range(2):  # the migration, and the migration run once more
            await store.close()
            _run_identity_migration_again(database_settings)
            store = store_for(database_settings)
            await store.open()
            owners = {job.id: job.caller for job in await store.list_jobs(limit=10)}
            query = UsageQuery(start=at - timedelta(days=1), end=utcnow(), group_by="caller")
            breakdown = {k: v.requests for k, v in (await store.usage_summary(query)).breakdown.items()}
            assert owners == {"job0": f"key:{alice.id}", "job1": f"key:{alice.id}", "job2": "bob", "job3": "stdio"}
            assert breakdown == {f"key:{alice.id}": 2, "bob": 1, "stdio": 1}
    finally:
        await store.close()


def _run_identity_migration_again(settings: dict[str, Any]) -> None:
    """Mark the identity migration (and any after it) as not applied, so the next open runs it again."""
    from mcp_server.store.base import CALLER_IDENTITY_MIGRATION

    if "database_url" in settings:
        import psycopg

        from mcp_server.store import postgres

        done = postgres.MIGRATIONS.index(CALLER_IDENTITY_MIGRATION)
        with psycopg.connect(settings["database_url"], autocommit=True) as conn:
            conn.execute("DELETE FROM genroute_schema_version WHERE version > %s", (done,))
        return
    with sqlite3.connect(Path(settings["data_dir"]) / "genroute.db") as conn:
        conn.execute(f"PRAGMA user_version={sqlite.MIGRATIONS.index(CALLER_IDENTITY_MIGRATION)}")
