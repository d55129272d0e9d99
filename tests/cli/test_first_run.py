"""A first run that explains itself: `serve` says where to connect, and a busy port is one line, never a crash."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mcp_server import __version__
from tests.support import GatewayProcess, child_env, genroute_command, write_config


def banner_of(gateway: GatewayProcess) -> str:
    """The running server's stderr once its banner is complete (it is printed as the port starts accepting)."""
    deadline = time.monotonic() + 10
    while "  try it: " not in gateway.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    return gateway.stderr()


def test_http_serve_says_where_to_connect(config_path: Path, tmp_path: Path) -> None:
    with GatewayProcess(config_path) as gateway:
        stderr = banner_of(gateway)
    assert (
        f"genroute {__version__}: MCP over streamable HTTP at http://127.0.0.1:{gateway.port}/mcp (Ctrl-C stops)"
        in stderr
    )
    assert "  auth: none (--no-auth: clients on this machine only)\n" in stderr
    assert "  models: 3 chat models\n" in stderr
    assert f"  data in {tmp_path / 'data'}\n" in stderr


def test_http_serve_with_keys_says_none_is_active_yet(config_data: dict[str, Any], tmp_path: Path) -> None:
    config_data["models"]["img"] = {"provider": "arkroute", "kind": "image"}
    path = write_config(tmp_path / "genroute.toml", config_data)
    with GatewayProcess(path, auth=True) as gateway:
        stderr = banner_of(gateway)
    assert "  auth: bearer keys, none active yet: every request gets 401 until `genroute keys create NAME`" in stderr
    assert "  models: 3 chat models, 1 image model\n" in stderr


def test_a_busy_port_is_one_line_and_exit_3_every_time(config_path: Path) -> None:
    """20 starts against a port something else holds: exit 3 and one line naming the port and --port each time.
    (Before: uvicorn's error after "Application startup complete", and about one start in ten died of SIGSEGV.)"""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = [
            genroute_command(),
            "--config",
            str(config_path),
            "serve",
            "--http",
            "--no-auth",
            "--port",
            str(port),
        ]

        def start(_: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run(command, capture_output=True, text=True, timeout=60, env=child_env())

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(start, range(20)))
    for result in results:
        assert result.returncode == 3, (result.returncode, result.stderr)
        assert result.stderr == (
            f"genroute: port {port} on 127.0.0.1 is already in use: stop what listens there, or choose another "
            "with --port\n"
        )
        assert result.stdout == ""


def test_stdio_serve_says_what_it_is_when_started_from_a_terminal(config_path: Path, tmp_path: Path) -> None:
    """A person who types `genroute serve` sees one line on stderr; an MCP client (stdin a pipe) gets none."""
    command = [genroute_command(), "serve", "--config", str(config_path), "--log-level", "DEBUG"]  # options after
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        command, stdin=terminal, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env()
    )
    os.close(terminal)
    try:
        line = _line_with(process, "MCP over stdio", timeout_s=30)
    finally:
        process.kill()
        process.wait(timeout=10)
        os.close(controller)
        assert process.stderr is not None
        process.stderr.close()
    assert line.startswith(
        f"genroute {__version__}: MCP over stdio, waiting for a client on stdin (3 chat models; data in "
    )
    assert str(tmp_path / "data") in line and "genroute serve --http --no-auth" in line

    piped = subprocess.run(command, input="", capture_output=True, text=True, timeout=60, env=child_env())
    assert "MCP over stdio" not in piped.stderr


def _line_with(process: subprocess.Popen[bytes], marker: str, timeout_s: float) -> str:
    """The first stderr line holding `marker`, read with a bound (the server keeps running, the pipe open)."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    data = b""
    while time.monotonic() < deadline:
        lines = [line for line in data.decode(errors="replace").splitlines(keepends=True) if marker in line]
        if lines and lines[0].endswith("\n"):
            return lines[0].rstrip("\n")
        ready, _, _ = select.select([process.stderr], [], [], 0.2)
        chunk = os.read(process.stderr.fileno(), 4096) if ready else b""
        if ready and not chunk:
            break
        data += chunk
    raise AssertionError(f"no line with {marker!r} on stderr within {timeout_s} s: {data!r}")
