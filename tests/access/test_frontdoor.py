"""The front door under abuse, against a real `genroute serve --http` over real sockets: sessions per key,
header size and time, connection count, failed authentication per address, OAuth introspection caching."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from emulator.access import AuthorizationServer, ThreadedServer
from tests.support import GatewayProcess, child_env, http_gateway, write_config
from tests.support_access import new_key, post

BAD_KEY = "gr_" + "x" * 43


def _gateway_config(config_data: dict[str, Any], tmp_path: Path, **http: Any) -> Path:
    config_data["http"] = http
    return write_config(tmp_path / "genroute.toml", config_data)


# ----- sessions ------------------------------------------------------------------------------------------------


SESSION_HEADERS = {"Mcp-Protocol-Version": "2025-11-25"}
PING = b'{"jsonrpc": "2.0", "id": 2, "method": "ping"}'


def test_a_key_may_hold_only_so_many_sessions(config_data: dict[str, Any], tmp_path: Path) -> None:
    config_path = _gateway_config(config_data, tmp_path, max_sessions_per_key=3)
    alice, bob = new_key(config_path, "alice"), new_key(config_path, "bob")
    with http_gateway(config_path, auth=True) as gateway:
        opened = [post(gateway.mcp_url, alice) for _ in range(3)]
        refused = post(gateway.mcp_url, alice)
        others = [post(gateway.mcp_url, bob) for _ in range(3)]  # another key is not held up by alice's
        first = {**SESSION_HEADERS, "Mcp-Session-Id": opened[0].headers["mcp-session-id"]}
        ended = httpx2.delete(gateway.mcp_url, headers={"Authorization": f"Bearer {alice}", **first}, timeout=10)
        after_ending_one = post(gateway.mcp_url, alice)
        full_again = post(gateway.mcp_url, alice)
    assert [r.status_code for r in opened + others] == [200] * 6
    assert refused.status_code == 429 and "mcp-session-id" not in refused.headers
    error = refused.json()["error"]
    assert "max_sessions_per_key" in error["message"] and "DELETE" in error["message"]
    assert error["data"] == {"error": "too_many_sessions", "max_sessions_per_key": 3}
    assert ended.status_code == 200 and after_ending_one.status_code == 200
    assert full_again.status_code == 429


def test_idle_sessions_expire_and_make_room(config_data: dict[str, Any], tmp_path: Path) -> None:
    config_path = _gateway_config(config_data, tmp_path, max_sessions_per_key=1, session_idle_s=1)
    alice = new_key(config_path, "alice")
    with http_gateway(config_path, auth=True) as gateway:
        opened = post(gateway.mcp_url, alice)
        session = {**SESSION_HEADERS, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
        deadline = time.monotonic() + 15
        while (pinged := post(gateway.mcp_url, alice, body=PING, **session)).status_code == 200:
            assert time.monotonic() < deadline, "the idle session did not expire"
            time.sleep(1.5)  # a ping is activity: the session can idle out only between two
        reopened = post(gateway.mcp_url, alice)
    assert opened.status_code == 200 and pinged.status_code == 404
    assert reopened.status_code == 200  # the expired session no longer counts against the key


# ----- headers and connections, before authentication ----------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _connect(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(first_bytes)
    return sock


def _is_closed(sock: socket.socket) -> bool:
    """Closed by the server (EOF or reset, after any answer it wrote), without waiting."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(timeout)


def _answer(sock: socket.socket, timeout_s: float) -> bytes:
    """What the server sends before closing (b"" for a bare close or a reset), within `timeout_s`."""
    sock.settimeout(timeout_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


SLOW_START = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_headers_are_bounded_in_size_time_and_connections(config_data: dict[str, Any], tmp_path: Path) -> None:
    config_path = _gateway_config(
        config_data, tmp_path, max_header_bytes=8192, header_timeout_s=2.0, max_connections=16
    )
    key = new_key(config_path, "alice")
    with http_gateway(config_path, auth=True) as gateway:
        assert gateway.process is not None
        pid, port = gateway.process.pid, gateway.port

        # One connection sends an endless header: the server stops reading and closes, its memory stays put.
        before = _rss_kib(pid)
        endless = _connect(port, SLOW_START)
        sent, chunk = 0, b"a" * 1024 * 1024
        try:
            while sent < 64 * 1024 * 1024:
                endless.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection
        endless_answer = _answer(endless, 5.0)
        grown_kib = _rss_kib(pid) - before

        # A complete header over the limit: 431.
        too_big = _connect(port, SLOW_START + b"a" * 20_000 + b"\r\n\r\n")
        too_big_answer = _answer(too_big, 5.0)

        # Headers that never finish are closed after header_timeout_s.
        started = time.monotonic()
        stalled = [_connect(port, SLOW_START) for _ in range(6)]
        while not all(_is_closed(sock) for sock in stalled) and time.monotonic() - started < 12:
            time.sleep(0.05)
        stalled_for = time.monotonic() - started
        timed_out = [_is_closed(sock) for sock in stalled]

        # A flood of slow connections over max_connections: the longest-waiting are dropped (before their header
        # timeout), so /healthz and a key still get in.
        flood = [_connect(port, SLOW_START) for _ in range(40)]
        time.sleep(0.2)
        still_open = sum(not _is_closed(sock) for sock in flood)
        health = httpx2.get(gateway.url + "/healthz", timeout=5)
        authenticated = post(gateway.mcp_url, key)
        for sock in [endless, too_big, *stalled, *flood]:
            sock.close()
    assert sent < 64 * 1024 * 1024 or endless_answer.startswith(b"HTTP/1.1 431"), "the endless header was read"
    assert grown_kib < 4 * 1024, f"the server grew by {grown_kib} KiB while refusing one header"
    assert too_big_answer.startswith(b"HTTP/1.1 431") or too_big_answer == b""
    assert all(timed_out) and 1.8 <= stalled_for < 12, (timed_out, stalled_for)
    assert health.status_code == 200 and authenticated.status_code == 200
    assert 0 < still_open <= 16


def _one_answer(sock: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body) on a kept-alive connection; b"" if it was closed."""
    sock.settimeout(5.0)
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            if not (chunk := sock.recv(65536)):
                return b""
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    except ConnectionResetError:
        return b""
    return head + b"\r\n\r\n" + body


def test_an_idle_connection_outlives_the_clients_keepalive(config_data: dict[str, Any], tmp_path: Path) -> None:
    """An idle keep-alive connection stays open until header_timeout_s, past httpx's 5 s pool expiry (the SDK
    client's): a server that closed it first (uvicorn's own default is 5 s) would race a request sent on it."""
    health = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with http_gateway(_gateway_config(config_data, tmp_path, header_timeout_s=8.0)) as gateway:
        sock = _connect(gateway.port, health)
        first = _one_answer(sock)
        time.sleep(6.0)  # idle longer than httpx keeps a pooled connection
        sock.sendall(health)
        second = _one_answer(sock)
        sock.close()
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200"), (first[:40], second[:40])


# ----- failed authentication -------------------------------------------------------------------------------------


def test_failed_authentication_is_limited_per_address_never_a_valid_key(
    config_data: dict[str, Any], tmp_path: Path
) -> None:
    config_path = _gateway_config(config_data, tmp_path, auth_failures_per_min=5)
    key = new_key(config_path, "alice")
    with http_gateway(config_path, auth=True) as gateway:
        failures = [post(gateway.mcp_url, BAD_KEY) for _ in range(5)]
        refused = [post(gateway.mcp_url, BAD_KEY), post(gateway.mcp_url)]
        with_key = [post(gateway.mcp_url, key) for _ in range(3)]
        health = httpx2.get(gateway.url + "/healthz", timeout=5)
    assert [r.status_code for r in failures] == [401] * 5
    assert [r.status_code for r in refused] == [429, 429]
    assert 1 <= int(refused[0].headers["retry-after"]) <= 60
    assert refused[0].json()["error"] == "too_many_failures" and "5 a minute" in refused[0].json()["error_description"]
    assert [r.status_code for r in with_key] == [200] * 3 and health.status_code == 200


def test_introspection_answers_are_cached_and_made_up_tokens_stop_reaching_the_server(
    config_data: dict[str, Any], tmp_path: Path
) -> None:
    authorization = AuthorizationServer()
    with ThreadedServer(authorization.app()) as issuer:
        config_path = tmp_path / "genroute.toml"
        process = GatewayProcess(config_path, auth=True, env=child_env())
        authorization.tokens = {"tok-good": {"active": True, "aud": process.mcp_url, "sub": "user-1"}}
        config_data["http"] = {
            "auth_failures_per_min": 5,
            "oauth": {
                "issuer_url": issuer.url,
                "introspection_url": issuer.url + "/introspect",
                "resource_url": process.mcp_url,
            },
        }
        write_config(config_path, config_data)
        key = new_key(config_path, "alice")

        def asked(token: str) -> int:
            return sum(r["form"]["token"] == token for r in authorization.requests)

        with process:
            good = [post(process.mcp_url, "tok-good").status_code for _ in range(4)]
            bad = [post(process.mcp_url, "tok-bad").status_code for _ in range(4)]  # 4 failures of 5
            made_up = [post(process.mcp_url, f"tok-random-{n}").status_code for n in range(6)]
            while_blocked = [post(process.mcp_url, "tok-good").status_code, post(process.mcp_url, key).status_code]
    assert good == [200] * 4 and asked("tok-good") == 1  # reused for [oauth] cache_s (30 s by default)
    assert bad == [401] * 4 and asked("tok-bad") == 1  # a refused token is remembered too
    assert made_up == [401] + [429] * 5
    assert sum(asked(f"tok-random-{n}") for n in range(6)) == 1  # the address is over its limit: no more asking
    assert while_blocked == [200, 200]  # a cached token and a key still pass
