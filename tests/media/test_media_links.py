"""Signed media links, the media records behind the dashboard, and the dashboard's HTTP rules (no browser here:
tests/dashboard/test_dashboard_browser.py drives Chromium)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from emulator import Emulator
from mcp_server.config import HttpConfig
from mcp_server.media.links import MediaLinks
from mcp_server.media.retention import prune_once, pruned
from mcp_server.media.stores.local import LocalStore
from mcp_server.store import Store
from mcp_server.store.media_index import CallFilter, MediaRecord
from mcp_server.store.usage import UsageRecord
from tests.store_backends import store_for
from tests.support import http_gateway, in_memory_client, write_config
from tests.support_access import client, new_key
from tests.support_media import IMAGE_MODEL, file_bytes, media_config

pytestmark = pytest.mark.anyio
IMAGE = {"prompt": "a red square", "model": IMAGE_MODEL, "size": "256x256"}


@pytest.fixture
def store(opened_store: Store) -> Store:
    return opened_store


async def test_replicas_share_one_signing_secret(database_settings: dict[str, Any], store: Store) -> None:
    other = store_for(database_settings)  # a second process on the same database
    await other.open()
    try:
        first = MediaLinks(store, HttpConfig(), "http://a:1")
        second = MediaLinks(other, HttpConfig(), "http://b:2")
        link = await first.sign("20250101-000000-nano-0123456789ab.png")
        exp, sig = link.url.split("?exp=")[1].split("&sig=")
        assert await second.verify("20250101-000000-nano-0123456789ab.png", exp, sig) == "ok"
        assert await second.secret() == await first.secret()
    finally:
        await other.close()


async def test_link_verdicts(store: Store, tmp_path: Path) -> None:
    links = MediaLinks(store, HttpConfig(media_link_ttl_s=60), "http://127.0.0.1:9")
    media_id = "20250101-000000-nano-0123456789ab.png"
    link = await links.sign(media_id)
    exp, sig = link.url.split("?exp=")[1].split("&sig=")
    assert link.url.startswith(f"http://127.0.0.1:9/media/{media_id}?exp=")
    assert await links.verify(media_id, exp, sig) == "ok"
    assert await links.verify(media_id, exp, sig, now=time.time() + 61) == "expired"
    assert await links.verify(media_id, str(int(exp) + 1), sig) == "bad"  # a longer life is a forgery
    assert await links.verify("20250101-000000-nano-0123456789ac.png", exp, sig) == "bad"  # another file
    assert await links.verify(media_id, exp, sig[:-1] + ("A" if sig[-1] != "A" else "B")) == "bad"
    assert await links.verify(media_id, "12abc", sig) == "bad"
    foreign_store = store_for({"data_dir": str(tmp_path / "elsewhere")})  # another server, its own secret
    await foreign_store.open()
    try:
        assert await MediaLinks(foreign_store, HttpConfig(), "http://x").verify(media_id, exp, sig) == "bad"
    finally:
        await foreign_store.close()


async def test_media_records_and_recent_calls(store: Store) -> None:
    now = datetime.now(UTC)
    for i, caller in enumerate(["key:a", "key:b", "key:a"]):
        record = MediaRecord(
            id=f"m{i}.png", caller=caller, kind="image", tool="generate_image", model="nano", mime_type="image/png",
            bytes=10 + i, created_at=now - timedelta(days=3 - i),
        )  # fmt: skip
        await store.add_media(record)
    await store.add_media(record)  # a second record of one file is ignored
    assert [m.id for m in await store.list_media(caller="key:a")] == ["m2.png", "m0.png"]
    assert (await store.get_media("m1.png")).caller == "key:b"  # type: ignore[union-attr]
    assert await store.delete_media_before(now - timedelta(days=2, hours=12)) == ["m0.png"]
    assert [m.id for m in await store.list_media()] == ["m2.png", "m1.png"]

    base = {"tool": "generate_image", "provider": "arkroute", "upstream_model": "u"}
    await store.record_usage_batch(
        [
            UsageRecord(at=now - timedelta(seconds=3), model="nano", caller="key:a", cost_usd=0.02, **base),
            UsageRecord(at=now - timedelta(seconds=2), model="gpt", caller="key:b", outcome="rate_limited", **base),
            UsageRecord(at=now - timedelta(seconds=1), model="nano", caller="key:b", cost_usd=0.04, **base),
        ]
    )
    newest = await store.recent_calls(CallFilter())
    assert [(c.caller, c.cost_usd) for c in newest] == [("key:b", 0.04), ("key:b", 0.0), ("key:a", 0.02)]
    assert [c.caller for c in await store.recent_calls(CallFilter(caller="key:a"))] == ["key:a"]
    assert [c.model for c in await store.recent_calls(CallFilter(outcome="error"))] == ["gpt"]
    assert len(await store.recent_calls(CallFilter(model="nano", outcome="ok", limit=1))) == 1


def test_pruned_ids_are_told_by_their_time() -> None:
    now = datetime(2025, 3, 10, tzinfo=UTC)
    old, recent = "20250101-000000-nano-0123456789ab.png", "20250309-000000-nano-0123456789ab.png"
    assert pruned(old, 30, now) and not pruned(recent, 30, now)
    assert not pruned(old, None, now) and not pruned("../etc/passwd", 30, now)


async def test_stdio_results_carry_no_link(config_data: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(media_config(config_data)) as mcp:
        result = await mcp.call_tool("generate_image", IMAGE)
    assert not result.is_error, result.content
    assert "link" not in result.structured_content["images"][0]
    assert next(b.uri for b in result.content if b.type == "resource_link").startswith("media://")


@pytest.mark.parametrize("resource_links", ["signed", "media"])
async def test_signed_links_over_http(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path, resource_links: str
) -> None:
    config = media_config(config_data)
    public = "https://genroute.example.com"
    config["http"] = {"public_base_url": public + "/", "resource_links": resource_links}
    path = write_config(tmp_path / "genroute.toml", config)
    key = new_key(path, "alice")
    with http_gateway(path, auth=True) as gateway:
        async with client(gateway.mcp_url, key) as mcp:
            result = await mcp.call_tool("generate_image", IMAGE)
        assert not result.is_error, result.content
        image = result.structured_content["images"][0]
        link = image["link"]["url"]
        assert link.startswith(f"{public}/media/{image['id']}?exp=")
        [resource] = [b for b in result.content if b.type == "resource_link"]
        assert str(resource.uri) == (link if resource_links == "signed" else image["uri"])
        assert link in result.content[0].text
        local = gateway.url + link.removeprefix(public)  # the same link, reached on the loopback address
        async with httpx2.AsyncClient(timeout=10) as http:
            opened = await http.get(local)
            tampered = await http.get(local.replace("&sig=", "&sig=x"))
            longer = await http.get(local.replace("?exp=", "?exp=9"))
            keyless = await http.get(f"{gateway.url}/media/{image['id']}")
    assert opened.status_code == 200 and opened.content == file_bytes(image["path"])
    assert opened.headers["content-type"] == "image/png"
    assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "media_link_invalid"
    assert longer.status_code == 403
    assert keyless.status_code == 401  # the plain route still needs a key


async def test_retention_pass_removes_old_files_and_records(store: Store, tmp_path: Path) -> None:
    root = LocalStore(tmp_path / "media")
    folder = root.root.directory()
    now = datetime(2025, 3, 10, tzinfo=UTC)
    old, recent = "20250101-000000-nano-0123456789ab.png", "20250309-000000-nano-0123456789ab.png"
    for name in (old, recent, "notes.txt"):
        (folder / name).write_bytes(b"x")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep")
    (folder / "20250102-000000-nano-0123456789ab.png").symlink_to(outside)  # a planted link: removed, not followed
    for name, made in ((old, datetime(2025, 1, 1, tzinfo=UTC)), (recent, datetime(2025, 3, 9, tzinfo=UTC))):
        record = MediaRecord(id=name, caller="key:a", kind="image", tool="generate_image", model="nano",
                             mime_type="image/png", bytes=1, created_at=made)  # fmt: skip
        await store.add_media(record)
    assert await prune_once(store, root, 30, now) == 3  # two files (the link too) and one record
    assert sorted(p.name for p in folder.iterdir()) == [recent, "notes.txt"]
    assert outside.read_bytes() == b"keep"
    assert [m.id for m in await store.list_media()] == [recent]
    assert await prune_once(store, root, 30, now) == 0


async def test_pruned_file_answers_410(config_data: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    config = media_config(config_data)
    config["server"]["media_retention_days"] = 1
    path = write_config(tmp_path / "genroute.toml", config)
    key = new_key(path, "alice")
    old = "20200101-000000-nano-0123456789ab.png"
    planted = Path(config["server"]["output_dir"]) / old
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"old")
    with http_gateway(path, auth=True) as gateway:
        async with client(gateway.mcp_url, key) as mcp:
            result = await mcp.call_tool("generate_image", IMAGE)
        image = result.structured_content["images"][0]
        await anyio.Path(image["path"]).unlink()  # gone although recent: not the sweep's doing
        for _ in range(100):  # the sweep's first pass runs as the server starts
            if not await anyio.Path(planted).exists():
                break
            await anyio.sleep(0.05)
        assert not await anyio.Path(planted).exists()
        async with httpx2.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {key}"}) as http:
            signed = await http.get(gateway.url + "/media/" + image["link"]["url"].split("/media/")[1])
            plain_old = await http.get(f"{gateway.url}/media/{old}")
            plain_recent = await http.get(f"{gateway.url}/media/{image['id']}")
    assert signed.status_code == 410 and signed.json()["error"]["code"] == "media_pruned"
    assert "media_retention_days" in signed.json()["error"]["message"]
    assert plain_old.status_code == 410
    assert plain_recent.status_code == 404  # younger than the retention period: not pruned, so unknown


async def test_dashboard_http_rules(config_data: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    """Sessions, CSRF, CSP and tenancy, checked at the HTTP level (the browser tests check the page)."""
    path = write_config(tmp_path / "genroute.toml", media_config(config_data))
    alice, bob, boss = new_key(path, "alice"), new_key(path, "bob"), new_key(path, "boss", "--admin")
    with http_gateway(path, auth=True) as gateway:
        async with client(gateway.mcp_url, alice) as mcp:
            mine = (await mcp.call_tool("generate_image", IMAGE)).structured_content["images"][0]["id"]
        origin = {"Origin": gateway.url}
        async with httpx2.AsyncClient(base_url=gateway.url, timeout=10) as http:
            page = await http.get("/dashboard")
            assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
            assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
            assert (await http.get("/dashboard/api/calls")).status_code == 401
            assert (await http.post("/dashboard/login", json={"key": bob})).status_code == 403  # no Origin
            cross = await http.post("/dashboard/login", json={"key": bob}, headers={"Origin": "https://evil.example"})
            assert cross.status_code == 403
            wrong = await http.post("/dashboard/login", json={"key": "gr_" + "x" * 43}, headers=origin)
            assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
            signed_in = await http.post("/dashboard/login", json={"key": bob}, headers=origin)
            cookie = signed_in.headers["set-cookie"]
            assert bob not in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
            assert (await http.get("/dashboard/api/calls")).json() == []  # alice's call is not bob's
            assert (await http.get("/dashboard/api/media")).json() == []
            assert (await http.get(f"/dashboard/file/{mine}")).status_code == 404  # an id guessed is not enough
            assert (await http.get(f"/dashboard/thumb/{mine}")).status_code == 404
            assert (await http.get("/dashboard/api/keys")).status_code == 403
            assert (await http.get("/dashboard/api/calls?caller=alice")).json() == []  # the filter cannot widen
            token = cookie.split(";")[0].split("=", 1)[1]
            forged = token[:-1] + ("A" if token[-1] != "A" else "B")
            http.cookies.set("genroute_dashboard", forged, "127.0.0.1", "/dashboard")
            assert (await http.get("/dashboard/api/me")).status_code == 401  # a forged session
        async with httpx2.AsyncClient(base_url=gateway.url, timeout=10) as http:
            await http.post("/dashboard/login", json={"key": boss}, headers=origin)
            assert [c["caller"] for c in (await http.get("/dashboard/api/calls?caller=alice")).json()] == ["alice"]
            assert (await http.get(f"/dashboard/file/{mine}")).status_code == 200
            assert {k["name"] for k in (await http.get("/dashboard/api/keys")).json()} == {"alice", "bob", "boss"}
            assert (await http.get("/dashboard", headers={"Host": "evil.example"})).status_code == 421
