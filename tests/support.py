"""Helpers for tests: config dicts, TOML files, and genroute as a subprocess over stdio or HTTP."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import tomli_w
from mcp import Client, StdioServerParameters

# re-exported: the tests import the emulator's gateway configs from here
from emulator.configs import EMU_KEY_ENV as EMU_KEY_ENV
from emulator.configs import base_config as base_config
from mcp_server.config import parse_config
from mcp_server.gateway import Gateway
from mcp_server.server import build_server
from tests.prefork_client import ForkedProcess, fork_server

# Raw MCP messages for tests that speak the protocol by hand (a 2025-11-25 session's opening; a 2026-07-28
# request's `_meta`, which carries what a session would)
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def genroute_command() -> str:
    """The installed console script, next to the interpreter running the tests."""
    script = Path(sys.executable).parent / "genroute"
    return str(script) if script.exists() else shutil.which("genroute") or "genroute"


def genroute_argv() -> list[str]:
    """How a test runs `genroute ...` as a process of its own: forked from the worker's fork server (tests/prefork.py:
    a real process on the caller's pipes, cwd, environment and umask, its exit status mirrored, without the ~1 s
    import), or the installed script with `GENROUTE_TEST_NO_FORK=1`."""
    forks = fork_server()
    if forks is None:
        return [genroute_command()]
    command, args = forks.command([])
    return [command, *args]


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def in_memory_client(config: dict[str, Any]) -> Client:
    """The real server in-process (no subprocess): fastest for logic that does not depend on the transport."""
    return Client(build_server(Gateway.from_config(parse_config(config))))


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")}
    env[EMU_KEY_ENV] = "test-key"
    env.update(extra)
    return env


def stdio_client(config_path: Path, *, env: dict[str, str] | None = None, **client_kwargs: Any) -> Client:
    """The SDK's stdio client on `genroute serve`, forked from the worker's fork server (tests/prefork.py)."""
    args = ["--config", str(config_path), "--log-level", "DEBUG", "serve"]
    forks = fork_server()
    command, args = forks.command(args) if forks else (genroute_command(), args)
    return Client(StdioServerParameters(command=command, args=args, env=env or child_env()), **client_kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def healthy(url: str) -> bool:
    """Does `url`/healthz answer 200? Polled while a server starts: plain HTTP on loopback, so no TLS context
    (httpx builds one per call unless told not to: ~40 ms of CPU, more than the wait between polls)."""
    with contextlib.suppress(httpx2.TransportError):
        return httpx2.get(url + "/healthz", timeout=1, verify=False).status_code == 200
    return False


class PortTaken(RuntimeError):
    """The port free_port() chose was bound by someone else before genroute could bind it."""


class GatewayProcess:
    """`genroute serve --http` as a subprocess on a free loopback port; stderr kept for log assertions.

    Without `auth=True` it runs with --no-auth (allowed on loopback), as most tests are not about access control.
    """

    def __init__(
        self, config_path: Path, *extra_args: str, env: dict[str, str] | None = None, auth: bool = False
    ) -> None:
        self.config_path = config_path
        self.extra_args = list(extra_args) + ([] if auth else ["--no-auth"])
        self.env = env or child_env()
        self.port = free_port()
        self.stderr_path = config_path.parent / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | ForkedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def start(self, timeout_s: float = 30.0) -> GatewayProcess:
        for _ in range(3):
            try:
                return self._start(timeout_s)
            except PortTaken:  # by another test process (pytest-xdist) since free_port() chose it: choose again
                self.port = free_port()
                self.stderr_path = self.config_path.parent / f"serve-{self.port}.log"
        return self._start(timeout_s)

    def _start(self, timeout_s: float) -> GatewayProcess:
        args = ["--config", str(self.config_path), "--log-level", "DEBUG", "serve", "--http"]
        args += ["--port", str(self.port), *self.extra_args]
        forks = fork_server()  # a fork of the worker's fork server (tests/prefork.py), or the script itself
        with self.stderr_path.open("wb") as stderr:
            if forks:
                self.process = forks.spawn(args, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr)
            else:
                self.process = subprocess.Popen(
                    [genroute_command(), *args], env=self.env, stdout=subprocess.DEVNULL, stderr=stderr
                )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if port_taken(self.port):
                    raise PortTaken(self.port)
                raise RuntimeError(f"genroute exited with {self.process.returncode}: {self.stderr()}")
            if healthy(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"genroute did not answer /healthz within {timeout_s} s: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def two_replicas(config_path: Path, *, auth: bool = False) -> tuple[GatewayProcess, GatewayProcess]:
    """Two `serve --http` processes on one config (so one database), on different ports; neither started."""
    first, second = GatewayProcess(config_path, auth=auth), GatewayProcess(config_path, auth=auth)
    while second.port == first.port:
        second = GatewayProcess(config_path, auth=auth)
    return first, second


@contextlib.contextmanager
def http_gateway(
    config_path: Path, *extra_args: str, env: dict[str, str] | None = None, auth: bool = False
) -> Iterator[GatewayProcess]:
    with GatewayProcess(config_path, *extra_args, env=env, auth=auth) as process:
        yield process


def ledger(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ledger row of a SQLite-configured gateway, oldest first."""
    conn = sqlite3.connect(Path(config["server"]["data_dir"]) / "genroute.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM usage_ledger ORDER BY id")]
    finally:
        conn.close()
