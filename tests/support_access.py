"""Helpers for the access tests: `genroute keys` in-process, raw MCP posts, authenticated MCP clients."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_server import cli

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
# What a key's rate limit counts; posted without a session it is counted, then refused by the SDK (400)
TOOL_CALL = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_models"}}).encode()
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def keys(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`genroute keys ...` through the real CLI entry point, in-process (in a thread, so async tests may call it)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["--config", str(config_path), "keys", *args]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), ThreadPoolExecutor(1) as pool:
        code = pool.submit(cli.main, argv).result(timeout=60)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def new_key(config_path: Path, name: str, *flags: str) -> str:
    result = keys(config_path, "create", name, *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def post(url: str, token: str | None = None, *, body: bytes | None = None, **headers: str) -> httpx2.Response:
    sent = {**MCP_HEADERS, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    content = body if body is not None else json.dumps(INIT).encode()
    return httpx2.post(url, headers=sent, content=content, timeout=10, verify=False)  # loopback: no TLS context


def client(url: str, token: str, mode: str = "legacy") -> Client:
    """An MCP client sending `token`; "legacy" speaks 2025-11-25 sessions, "auto" the stateless 2026-07-28."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def data_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("genroute.db*")))
