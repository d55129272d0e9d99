"""HTTP access control against real processes: keys, 401/429/421/403/413, OAuth resource-server mode, identity."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest

from emulator import Emulator
from emulator.access import AuthorizationServer, ThreadedServer
from mcp_server.access import identity
from mcp_server.access.hosts import security_settings
from mcp_server.config import HttpConfig, parse_config
from mcp_server.gateway import Gateway
from mcp_server.http_app import build_http_app
from mcp_server.server import build_server
from tests.support import GatewayProcess, child_env, free_port, genroute_command, http_gateway, write_config
from tests.support_access import MCP_HEADERS, TOOL_CALL, client, data_bytes, keys, new_key, post

# ----- keys --------------------------------------------------------------------------------------------


def test_keys_are_shown_once_and_stored_only_as_a_hash(config_path: Path, tmp_path: Path) -> None:
    created = keys(config_path, "create", "alice", "--rate-limit", "30")
    key = created.stdout.strip()
    assert created.returncode == 0
    assert key.startswith("gr_") and len(key) >= 40 and "\n" not in key
    assert "only time" in created.stderr and "Authorization: Bearer" in created.stderr

    listing = keys(config_path, "list")
    stored = data_bytes(tmp_path / "data")
    assert listing.returncode == 0
    assert "alice" in listing.stdout and "30/min" in listing.stdout
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert key not in listing.stdout and digest not in listing.stdout
    assert key.encode() not in stored and digest.encode() in stored

    again = keys(config_path, "create", "alice")
    assert again.returncode == 1 and "already exists" in again.stderr and again.stdout == ""

    bad = keys(config_path, "create", "no spaces please")
    assert bad.returncode == 1 and "not allowed" in bad.stderr and "Traceback" not in bad.stderr

    assert keys(config_path, "revoke", "alice").returncode == 0
    revoked = [line for line in keys(config_path, "list").stdout.splitlines() if line.startswith("alice")]
    assert len(revoked) == 1 and revoked[0].split()[3] != "-"  # the REVOKED column has a date
    missing = keys(config_path, "revoke", "alice")
    assert missing.returncode == 1 and "No active key named 'alice'" in missing.stderr
    assert new_key(config_path, "alice") != key  # a revoked key's name may be used again


def test_no_auth_is_refused_off_loopback(config_path: Path) -> None:
    port = free_port()
    serve = ["serve", "--http", "--host", "0.0.0.0", "--no-auth", "--port", str(port)]
    result = subprocess.run(
        [genroute_command(), "--config", str(config_path), *serve],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    assert result.returncode == 2
    assert "--no-auth is allowed only on a loopback address" in result.stderr
    assert "genroute keys create" in result.stderr
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


# ----- bearer keys over HTTP ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_http_requires_a_valid_unrevoked_key(config_path: Path, emulator: Emulator) -> None:
    key = new_key(config_path, "alice")
    with http_gateway(config_path, auth=True) as gateway:
        missing = post(gateway.mcp_url)
        wrong = post(gateway.mcp_url, "gr_" + "x" * 43)
        basic = post(gateway.mcp_url, Authorization="Basic YWxpY2U6cHc=")
        health = httpx2.get(gateway.url + "/healthz", timeout=5)
        media = httpx2.get(gateway.url + "/media/0123456789abcdef", timeout=5)
        media_with_key = httpx2.get(gateway.url + "/media/0123456789abcdef", headers={"Authorization": f"Bearer {key}"})
        async with client(gateway.mcp_url, key) as mcp:
            tools = {t.name for t in (await mcp.list_tools()).tools}
            answer = await mcp.call_tool("chat_complete", {"prompt": "hi"})
        assert post(gateway.mcp_url, key).status_code == 200
        assert keys(config_path, "revoke", "alice").returncode == 0  # from another process, while serving
        after_revoke = post(gateway.mcp_url, key)
        stderr = gateway.stderr()
    for refused in (missing, wrong, basic, after_revoke, media):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert health.status_code == 200
    assert media_with_key.status_code == 404  # past the gate: there is just no such file
    assert {"chat_complete", "list_models"} <= tools
    assert answer.structured_content["content"] == "echo: hi"
    # the client's key authenticates it to genroute only: the provider got the provider's key
    sent = [value for request in emulator.requests for value in request.headers.values()]
    assert key not in " ".join(sent) and emulator.calls("chat")[0].headers["authorization"] == "Bearer test-key"
    assert key not in stderr


def test_rate_limit_answers_429_with_retry_after_per_key(config_path: Path) -> None:
    slow = new_key(config_path, "slow", "--rate-limit", "2")
    other = new_key(config_path, "other")
    with http_gateway(config_path, auth=True) as gateway:
        answers = [post(gateway.mcp_url, slow, body=TOOL_CALL) for _ in range(3)]
        still_initializes = post(gateway.mcp_url, slow)
        unaffected = post(gateway.mcp_url, other, body=TOOL_CALL)
    assert [a.status_code == 429 for a in answers] == [False, False, True]
    limited = answers[2]
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    assert limited.json()["error"]["data"]["error"] == "rate_limited"
    assert "2 tool calls a minute" in limited.json()["error"]["message"]
    assert still_initializes.status_code == 200 and unaffected.status_code != 429


def test_replicas_on_one_database_share_a_keys_rate_limit(
    config_data: dict[str, Any], database_settings: dict[str, Any], tmp_path: Path
) -> None:
    """Two servers behind a load balancer allow a key its limit, not twice it. PostgreSQL counts in the database
    by default; processes sharing one SQLite file do when `[http] rate_limit_shared = true`."""
    config_data["server"].update(database_settings)
    if "database_url" not in database_settings:
        config_data["http"] = {"rate_limit_shared": True}
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    key = new_key(config_path, "team", "--rate-limit", "3")
    first = GatewayProcess(config_path, auth=True).start()
    try:
        second = GatewayProcess(config_path, auth=True).start()
        try:
            answers = [post(gateway.mcp_url, key, body=TOOL_CALL) for gateway in (first, second, first, second, first)]
        finally:
            second.stop()
    finally:
        first.stop()
    assert [a.status_code == 429 for a in answers] == [False, False, False, True, True]
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers[3:])
    assert answers[3].json()["error"]["data"]["error"] == "rate_limited"


# ----- Host, Origin, body size ---------------------------------------------------------------------------


def test_host_origin_and_body_size_are_checked_on_every_path(config_data: dict[str, Any], tmp_path: Path) -> None:
    config_data["http"] = {"allowed_hosts": ["genroute.example.com"], "max_body_bytes": 64 * 1024}
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    key = new_key(config_path, "alice")
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "pad": "' + b"x" * 70_000 + b'"}'

    def chunked() -> Any:
        yield big[:30_000]
        yield big[30_000:]

    with http_gateway(config_path, auth=True) as gateway:
        health, mcp = gateway.url + "/healthz", gateway.mcp_url
        bad_host = [
            httpx2.get(health, headers={"Host": "evil.example"}, timeout=5),
            post(mcp, key, Host="evil.example"),
            post(mcp, Host="evil.example"),  # no key: the Host check comes first
        ]
        public_host = httpx2.get(health, headers={"Host": "genroute.example.com"}, timeout=5)
        public_origin = httpx2.get(health, headers={"Origin": "https://genroute.example.com"}, timeout=5)
        bad_origin = [
            httpx2.get(health, headers={"Origin": "https://evil.example"}, timeout=5),
            post(mcp, key, Origin="https://evil.example"),
        ]
        too_big = post(mcp, key, body=big)
        too_big_chunked = httpx2.post(
            mcp, headers={**MCP_HEADERS, "Authorization": f"Bearer {key}"}, content=chunked(), timeout=10
        )
        still_fine = post(mcp, key)
    assert [r.status_code for r in bad_host] == [421, 421, 421]
    assert "allowed_hosts" in bad_host[0].json()["error_description"]
    assert public_host.status_code == 200 and public_origin.status_code == 200
    assert [r.status_code for r in bad_origin] == [403, 403]
    assert too_big.status_code == 413 and too_big_chunked.status_code == 413
    assert still_fine.status_code == 200


def test_allowed_hosts_on_a_wildcard_bind() -> None:
    """On 0.0.0.0 only loopback names and the configured public names pass, never any Host at all."""
    settings = security_settings("0.0.0.0", 8000, HttpConfig(allowed_hosts=["genroute.example.com"]))
    assert "localhost:8000" in settings.allowed_hosts and "genroute.example.com" in settings.allowed_hosts
    assert "genroute.example.com:*" in settings.allowed_hosts
    assert not any(h.startswith(("0.0.0.0", "*")) for h in settings.allowed_hosts)
    assert "https://genroute.example.com" in settings.allowed_origins


# ----- identity: what tools see ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_see_the_key_name_and_admin_flag(config_data: dict[str, Any], tmp_path: Path, mode: str) -> None:
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    alice = new_key(config_path, "alice")
    root = new_key(config_path, "root", "--admin")
    gateway = Gateway.from_config(parse_config(config_data))
    mcp = build_server(gateway)

    @mcp.tool(name="whoami")
    def whoami() -> dict[str, Any]:
        caller = identity.current()
        return {"name": caller.name, "admin": caller.admin, "caller": identity.current_caller()}

    port = free_port()
    app = build_http_app(mcp, gateway, "127.0.0.1", port)
    with ThreadedServer(app, port=port, lifespan="on") as server:
        seen = []
        for key in (alice, root):
            async with client(server.url + "/mcp", key, mode) as session:
                seen.append((await session.call_tool("whoami", {})).structured_content)
    assert [(s["name"], s["admin"]) for s in seen] == [("alice", False), ("root", True)]
    # what jobs and usage belong to: the key, not its name
    assert seen[0]["caller"].startswith("key:") and seen[1]["caller"].startswith("key:")
    assert seen[0]["caller"] != seen[1]["caller"]
    assert identity.current_caller() == "stdio"  # outside any HTTP request: the local user


# ----- OAuth 2.1 resource-server mode ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_oauth_resource_server_mode(config_data: dict[str, Any], tmp_path: Path) -> None:
    authorization = AuthorizationServer()
    with ThreadedServer(authorization.app()) as issuer:
        config_path = tmp_path / "genroute.toml"
        process = GatewayProcess(
            config_path, auth=True, env=child_env(GR_OAUTH_ID="genroute", GR_OAUTH_SECRET="s3cret-introspection")
        )
        resource = process.mcp_url
        audience = {"active": True, "aud": resource, "client_id": "app"}
        authorization.tokens = {
            "tok-good": {**audience, "sub": "user-1", "scope": "mcp genroute:admin"},
            "tok-user": {**audience, "sub": "user-2", "scope": "mcp"},
            "tok-other-audience": {**audience, "aud": "https://other.example/mcp", "sub": "u", "scope": "mcp"},
            "tok-inactive": {"active": False},
            "tok-no-scope": {**audience, "sub": "user-3", "scope": "profile"},
        }
        config_data["http"] = {
            "oauth": {
                "issuer_url": issuer.url,
                "introspection_url": issuer.url + "/introspect",
                "resource_url": resource,
                "client_id_env": "GR_OAUTH_ID",
                "client_secret_env": "GR_OAUTH_SECRET",
                "required_scopes": ["mcp"],
            }
        }
        write_config(config_path, config_data)
        key = new_key(config_path, "alice")
        with process:
            metadata = httpx2.get(process.url + "/.well-known/oauth-protected-resource/mcp", timeout=5)
            missing = post(resource)
            refused = {t: post(resource, t).status_code for t in ("tok-other-audience", "tok-inactive", "nope")}
            no_scope = post(resource, "tok-no-scope")
            async with client(resource, "tok-good") as session:
                tools = (await session.list_tools()).tools
            by_key = post(resource, key).status_code
            authorization.status = 503
            while_down = post(resource, "tok-user").status_code
            stderr = process.stderr()
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == resource
    assert [s.rstrip("/") for s in metadata.json()["authorization_servers"]] == [issuer.url]
    assert missing.status_code == 401
    expected = f'resource_metadata="{process.url}/.well-known/oauth-protected-resource/mcp"'
    assert expected in missing.headers["www-authenticate"]
    assert refused == {"tok-other-audience": 401, "tok-inactive": 401, "nope": 401}
    assert no_scope.status_code == 403 and "insufficient_scope" in no_scope.headers["www-authenticate"]
    assert tools and by_key == 200
    assert while_down == 401  # an unreachable authorization server refuses, never a 500
    assert authorization.requests[0]["authorization"].startswith("Basic ")
    assert authorization.requests[0]["form"]["token_type_hint"] == "access_token"
    assert "tok-good" not in stderr and "s3cret-introspection" not in stderr


@pytest.mark.anyio
async def test_ledger_records_the_key_name_and_a_key_sees_only_its_own_usage(config_path: Path) -> None:
    """Over a real `genroute serve --http`: calls are charged to the key that made them; a non-admin key's
    get_usage shows only its own usage and may not ask for another caller's; an admin key sees everyone."""
    alice = new_key(config_path, "alice")
    bob = new_key(config_path, "bob")
    root = new_key(config_path, "root", "--admin")
    with http_gateway(config_path, auth=True) as gateway:
        for key, calls in ((alice, 2), (bob, 1)):
            async with client(gateway.mcp_url, key) as session:
                for _ in range(calls):
                    assert not (await session.call_tool("chat_complete", {"prompt": "hi"})).is_error
        async with client(gateway.mcp_url, alice) as session:
            own = (await session.call_tool("get_usage", {"group_by": "caller"})).structured_content
            spying = await session.call_tool("get_usage", {"caller": "bob"})
        async with client(gateway.mcp_url, root) as session:
            everyone = (await session.call_tool("get_usage", {"group_by": "caller"})).structured_content
    assert own["requests"] == 2 and set(own["breakdown"]) == {"alice"}
    assert spying.is_error and spying.structured_content["error"]["param"] == "caller"
    assert everyone["requests"] == 3
    assert {name: row["requests"] for name, row in everyone["breakdown"].items()} == {"alice": 2, "bob": 1}


@pytest.mark.anyio
async def test_a_key_sees_only_its_own_video_jobs(config_data: dict[str, Any], tmp_path: Path) -> None:
    """Video jobs hold prompts and results: over HTTP a non-admin key cannot read another key's job (status tool,
    jobs://{id}, jobs://recent) nor pick it up by reusing its client_request_id; an admin key sees every job."""
    import json

    from tests.support_media import VIDEO_MODEL, media_config

    config_path = write_config(tmp_path / "genroute.toml", media_config(config_data))
    alice = new_key(config_path, "alice")
    bob = new_key(config_path, "bob")
    root = new_key(config_path, "root", "--admin")
    video = {"prompt": "a quiet harbour", "model": VIDEO_MODEL, "wait_s": 0, "client_request_id": "req-1"}
    with http_gateway(config_path, auth=True) as gateway:
        async with client(gateway.mcp_url, alice) as session:
            job_id = (await session.call_tool("generate_video", video)).structured_content["job_id"]
            assert not (await session.call_tool("get_video_status", {"job_id": job_id, "wait_s": 0})).is_error
        async with client(gateway.mcp_url, bob) as session:
            status = await session.call_tool("get_video_status", {"job_id": job_id, "wait_s": 0})
            with pytest.raises(Exception, match="No video job"):
                await session.read_resource(f"jobs://{job_id}")
            recent = json.loads((await session.read_resource("jobs://recent")).contents[0].text)
            own = (await session.call_tool("generate_video", video)).structured_content
        async with client(gateway.mcp_url, root) as session:
            everyone = json.loads((await session.read_resource("jobs://recent")).contents[0].text)
            assert not (await session.call_tool("get_video_status", {"job_id": job_id, "wait_s": 0})).is_error
    assert status.is_error and status.structured_content["error"]["code"] == "job_not_found"
    assert "a quiet harbour" not in json.dumps(status.structured_content)
    assert recent == {"jobs": []}
    assert own["job_id"] != job_id and not own["deduplicated"]  # bob's request id is bob's own
    assert {job["id"] for job in everyone["jobs"]} == {job_id, own["job_id"]}


def test_browser_apps_on_allowed_origins_get_cors(config_data: dict[str, Any], tmp_path: Path) -> None:
    """A browser app on `[http] allowed_origins` can call /mcp cross-origin: its preflight (sent without
    credentials) is answered before authentication, and answers carry the CORS headers it needs (the session id
    exposed). Other origins are still refused; without configured origins there is no CORS at all."""
    app_origin = "https://app.example.com"
    preflight = {
        "Origin": app_origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
    }
    config_data["http"] = {"allowed_origins": [app_origin]}
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    key = new_key(config_path, "alice")
    with http_gateway(config_path, auth=True) as gateway:
        allowed = httpx2.options(gateway.mcp_url, headers=preflight, timeout=5)
        answered = post(gateway.mcp_url, key, Origin=app_origin)
        evil = httpx2.options(gateway.mcp_url, headers={**preflight, "Origin": "https://evil.example"}, timeout=5)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == app_origin
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == app_origin
    assert "mcp-session-id" in answered.headers["access-control-expose-headers"].lower()
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers

    plain = write_config(tmp_path / "plain.toml", {**config_data, "http": {}})
    with http_gateway(plain, auth=True) as gateway:
        local_origin = gateway.url.replace("127.0.0.1", "localhost")
        no_cors = httpx2.options(gateway.mcp_url, headers={**preflight, "Origin": local_origin}, timeout=5)
    assert no_cors.status_code == 401 and "access-control-allow-origin" not in no_cors.headers  # reached auth
