"""The s3 media store against a real S3-compatible server (SeaweedFS on loopback, emulator/s3server.py): replicas
with no shared disk serve each other's files, and a store outage loses nothing."""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from emulator import Emulator
from emulator.s3server import SKIP_REASON, SeaweedServer, weed_binary
from mcp_server import cli
from mcp_server.config import parse_config
from mcp_server.errors import ConfigError, GatewayError
from mcp_server.media.registry import MediaRegistry
from mcp_server.media.stores.configured import SPOOL_DIR, build_media_store
from mcp_server.media.stores.local import LocalStore
from mcp_server.store.media_index import CallFilter
from tests.store_backends import fresh_schema, needs_postgres, store_for
from tests.support import GatewayProcess, child_env, write_config
from tests.support_access import client, new_key
from tests.support_media import IMAGE_MODEL, media_config

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(weed_binary() is None, reason=SKIP_REASON)]
IMAGE = {"prompt": "a red square", "model": IMAGE_MODEL, "size": "256x256"}


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SeaweedServer.env().items():
        monkeypatch.setenv(name, value)


def registry_for(server: SeaweedServer, tmp_path: Path, **media: Any) -> MediaRegistry:
    config = parse_config({"server": {"data_dir": str(tmp_path / "data")}, "media": {**server.settings(), **media}})
    return MediaRegistry(build_media_store(config))


def spooled(data_dir: Path) -> list[str]:
    folder = data_dir / SPOOL_DIR
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


async def test_store_round_trip(seaweed: SeaweedServer, s3_env: None, tmp_path: Path) -> None:
    """Save, look up, stream a range, list and prune, all in the bucket; another replica (its own disk) sees it."""
    media = registry_for(seaweed, tmp_path / "a", prefix="round/trip")
    other = registry_for(seaweed, tmp_path / "b", prefix="round/trip", presigned_redirects=True)
    item = await media.save(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4000, "nano", "png")
    assert item.path == f"s3://media/round/trip/{item.id}" and item.bytes == 1_024_008
    assert spooled(tmp_path / "a" / "data") == []  # uploaded, so no longer on this replica's disk
    seen = await other.stat(item.id)
    assert seen is not None and seen.local is None and seen.size == item.bytes
    _, data = await other.read(item.id, 2_000_000)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) == item.bytes
    assert b"".join([c async for c in other.chunks(item.id, 8, 12)]) == bytes(range(4))
    with pytest.raises(GatewayError) as too_big:
        await other.read(item.id, 1_000_000)
    assert too_big.value.code == "media_too_large"
    url = await other.redirect_url(item.id, 60)
    assert url is not None and "X-Amz-Signature=" in url and httpx2.get(url, timeout=10).content == data
    assert await media.redirect_url(item.id, 60) is None  # presigned_redirects is off there
    assert await other.get("../../etc/passwd") is None and await other.get("20250101-000000-x-0123456789ab.png") is None
    assert [i async for i in other.store.ids()] == [item.id]
    old = "20200101-000000-nano-0123456789ab.png"
    temp, fd = media.store.create(old)
    os.write(fd, b"old")
    os.close(fd)
    await media.store.commit(old, temp)
    assert await media.store.delete_before(datetime(2021, 1, 1, tzinfo=UTC), 100) == 1
    assert [i async for i in other.store.ids()] == [item.id]
    await media.aclose()
    await other.aclose()


def test_s3_settings_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as no_bucket:
        parse_config({"media": {"store": "s3"}})
    assert "bucket" in str(no_bucket.value)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    config = parse_config(
        {
            "server": {"data_dir": str(tmp_path)},
            "media": {"store": "s3", "bucket": "b", "access_key_env": "K", "secret_key_env": "NOT_SET_ANYWHERE"},
        }
    )
    with pytest.raises(ConfigError) as missing:
        build_media_store(config)
    assert "media.access_key_env" in str(missing.value) and "NOT_SET_ANYWHERE" in str(missing.value)


def replica_config(base: dict[str, Any], tmp_path: Path, name: str, database_url: str | None, media: dict[str, Any]):
    """One replica's config: its own data_dir and output_dir (no shared disk), the shared database and bucket."""
    config = copy.deepcopy(base)
    config["server"].update({"data_dir": str(tmp_path / name / "data"), "output_dir": str(tmp_path / name / "out")})
    if database_url:
        config["server"]["database_url"] = database_url
    config["media"].update(media)
    return write_config(tmp_path / f"{name}.toml", config)


@needs_postgres
@pytest.mark.postgres
async def test_replicas_without_shared_disk_serve_each_others_media(
    seaweed: SeaweedServer, config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    base = media_config(config_data)
    env = child_env(**SeaweedServer.env())
    with fresh_schema() as url:
        path_a = replica_config(base, tmp_path, "a", url, seaweed.settings(prefix="replicas"))
        path_b = replica_config(base, tmp_path, "b", url, seaweed.settings(prefix="replicas"))
        key = new_key(path_a, "alice")  # in the shared database: both replicas know it
        with GatewayProcess(path_a, env=env, auth=True) as a, GatewayProcess(path_b, env=env, auth=True) as b:
            async with client(a.mcp_url, key) as mcp:
                image = (await mcp.call_tool("generate_image", IMAGE)).structured_content["images"][0]
            assert list((tmp_path / "a" / "out").glob("*.png")) == []  # nothing on A's disk: in the bucket
            async with client(b.mcp_url, key) as mcp:
                read = await mcp.read_resource(image["uri"])
            blob = base64.b64decode(read.contents[0].blob)
            assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) == image["bytes"]
            auth = {"Authorization": f"Bearer {key}"}
            async with httpx2.AsyncClient(base_url=b.url, timeout=10) as http:
                plain = await http.get(f"/media/{image['id']}", headers=auth)
                ranged = await http.get(f"/media/{image['id']}", headers={**auth, "Range": "bytes=0-7"})
                signed = await http.get("/media/" + image["link"]["url"].split("/media/")[1])  # signed by A
                await http.post("/dashboard/login", json={"key": key}, headers={"Origin": b.url})
                gallery = (await http.get("/dashboard/api/media")).json()
                dashboard = await http.get(f"/dashboard/file/{image['id']}")
                thumb = await http.get(f"/dashboard/thumb/{image['id']}")
    assert plain.status_code == 200 and plain.content == blob and plain.headers["content-type"] == "image/png"
    assert ranged.status_code == 206 and ranged.content == blob[:8]
    assert ranged.headers["content-range"] == f"bytes 0-7/{len(blob)}"
    assert signed.status_code == 200 and signed.content == blob
    assert [m["id"] for m in gallery] == [image["id"]]
    assert dashboard.status_code == 200 and dashboard.content == blob
    assert thumb.status_code == 200 and thumb.headers["content-type"] in ("image/jpeg", "image/png")


async def test_presigned_redirects(
    seaweed: SeaweedServer, config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    media = {**seaweed.settings(prefix="redirects"), "presigned_redirects": True}
    path = replica_config(media_config(config_data), tmp_path, "a", None, media)
    with GatewayProcess(path, env=child_env(**SeaweedServer.env())) as gateway:
        async with Client(streamable_http_client(gateway.mcp_url)) as mcp:
            image = (await mcp.call_tool("generate_image", IMAGE)).structured_content["images"][0]
        async with httpx2.AsyncClient(timeout=10) as http:
            answer = await http.get(f"{gateway.url}/media/{image['id']}")
            signed = await http.get(image["link"]["url"])
            fetched = await http.get(answer.headers["location"])
    assert answer.status_code == 302 and signed.status_code == 302
    assert answer.headers["location"].startswith(f"{seaweed.endpoint}/media/redirects/{image['id']}?")
    assert fetched.status_code == 200 and len(fetched.content) == image["bytes"]
    assert fetched.headers["content-type"] == "image/png"


async def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.2)


async def test_store_outage_loses_nothing(
    config_data: dict[str, Any],
    emulator: Emulator,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    s3_env: None,
) -> None:
    """The store stops mid-run: results are kept and served from the replica's disk, uploaded when the store is
    back (by the running process, and by the next one after a restart), and each call is charged once."""
    seaweed = SeaweedServer(tmp_path_factory.mktemp("seaweed-outage")).start()
    env = child_env(**SeaweedServer.env())
    path = replica_config(media_config(config_data), tmp_path, "a", None, seaweed.settings(prefix="outage"))
    data_dir = tmp_path / "a" / "data"
    key = new_key(path, "alice")
    try:
        with GatewayProcess(path, env=env, auth=True) as gateway:
            seaweed.stop()
            async with client(gateway.mcp_url, key) as mcp:
                first = (await mcp.call_tool("generate_image", IMAGE)).structured_content["images"][0]
            assert spooled(data_dir) == [first["id"]]
            auth = {"Authorization": f"Bearer {key}"}
            served = httpx2.get(f"{gateway.url}/media/{first['id']}", headers=auth, timeout=10)
            assert served.status_code == 200 and len(served.content) == first["bytes"]  # from the spool
            assert "upload to the store failed" in gateway.stderr()
            seaweed.start()
            await wait_until(lambda: spooled(data_dir) == [], 30, "the background upload")
            seaweed.stop()
            async with client(gateway.mcp_url, key) as mcp:
                second = (await mcp.call_tool("generate_image", IMAGE)).structured_content["images"][0]
        assert spooled(data_dir) == [second["id"]]  # the process stopped before the store came back
        seaweed.start()
        with GatewayProcess(path, env=env, auth=True) as gateway:
            await wait_until(lambda: spooled(data_dir) == [], 30, "the upload after the restart")
        other = registry_for(seaweed, tmp_path / "b", prefix="outage")
        with anyio.fail_after(30):
            for image in (first, second):
                _, data = await other.read(image["id"], 10_000_000)
                assert len(data) == image["bytes"]
        await other.aclose()
        store = store_for({"data_dir": str(data_dir)})
        await store.open()
        try:
            calls = await store.recent_calls(CallFilter())
        finally:
            await store.close()
        assert [c.tool for c in calls] == ["generate_image", "generate_image"]  # each call charged once
    finally:
        seaweed.stop()


def migrate(config_path: Path, to: str) -> tuple[int, str]:
    """`genroute media migrate --to ...` through the real CLI entry point, in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["--config", str(config_path), "media", "migrate", "--to", to])
    return code, out.getvalue() + err.getvalue()


async def test_migrate_between_stores(seaweed: SeaweedServer, s3_env: None, tmp_path: Path) -> None:
    settings = {**seaweed.settings(prefix="migrated"), "store": "local"}
    config = {"server": {"data_dir": str(tmp_path / "data"), "output_dir": str(tmp_path / "old"), "local_model": False},
              "media": settings}  # fmt: skip
    local = MediaRegistry(LocalStore(tmp_path / "old"))
    saved = [await local.save(b"\x89PNG\r\n\x1a\n" + bytes([i]) * 1000, "nano", "png") for i in range(3)]
    path = write_config(tmp_path / "genroute.toml", config)
    assert await anyio.to_thread.run_sync(migrate, path, "s3") == (0, "copied 3 media files to the s3 store, skipped "
                                                                       "0 already there\n")  # fmt: skip
    assert (await anyio.to_thread.run_sync(migrate, path, "s3"))[1].startswith("copied 0 media files")
    bucket = registry_for(seaweed, tmp_path / "reader", prefix="migrated")
    for item in saved:
        assert (await bucket.read(item.id, 10_000))[1] == (await local.read(item.id, 10_000))[1]
    await bucket.aclose()
    config["server"]["output_dir"] = str(tmp_path / "new")  # back to local files, on a new disk
    write_config(path, config)
    code, said = await anyio.to_thread.run_sync(migrate, path, "local")
    assert code == 0 and said.startswith("copied 3 media files to the local store"), said
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == sorted(item.id for item in saved)
    del config["media"]["bucket"]
    write_config(path, config)
    code, said = await anyio.to_thread.run_sync(migrate, path, "s3")
    assert code == 2 and "set [media] bucket" in said


def test_large_file_streams_in_bounded_memory() -> None:
    """A 96 MB file stored and served through the s3 store costs under 32 MB of peak RSS (bench/media_memory.py):
    three times the limit, so a store or a server that held the file would fail (`python -m bench.media_memory`
    measures 200 MB)."""
    from bench.media_memory import main

    assert main(96) == 0
