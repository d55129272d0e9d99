"""The MCP Inspector's CLI (a third-party client) lists and calls every tool over stdio and over HTTP.

Node >= 22.19 and the Inspector come from .ci/node22.sh (a local npm prefix, installed once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.support import EMU_KEY_ENV, child_env, genroute_command, http_gateway
from tests.support_access import new_key

ROOT = Path(__file__).resolve().parents[2]
# Arguments that make each known tool succeed against the emulator; tools added later are called with {}
# and must still answer with a well-formed result (an isError result with a message is fine).
KNOWN_ARGUMENTS: dict[str, dict[str, Any]] = {
    "chat_complete": {"prompt": "hello inspector"},
    "list_models": {"kind": "chat"},
}


@pytest.fixture(scope="module")
def node_bin() -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed, so Node 22 and the MCP Inspector cannot be fetched")
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "node22.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"installing Node 22 and the Inspector failed:\n{done.stderr[-2000:]}"
    return Path(done.stdout.strip())


@pytest.fixture
def inspector(node_bin: Path, tmp_path: Path) -> Iterator[Any]:
    env = {
        **child_env(),
        "PATH": f"{node_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),  # the Inspector keeps a catalog and secrets under HOME
        "MCP_CATALOG_PATH": str(tmp_path / "home" / "mcp.json"),
    }

    def run(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [str(node_bin / "mcp-inspector"), "--cli", "--format", "json", "-q", "--connect-timeout", "30000", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert done.stdout.strip(), f"no output (exit {done.returncode}): {done.stderr[-2000:]}"
        answer = json.loads(done.stdout)
        assert "result" in answer, answer
        return answer["result"]

    yield run


def exercise_every_tool(inspector: Any, target: list[str]) -> dict[str, dict[str, Any]]:
    tools = inspector("--method", "tools/list", *target)["tools"]
    names = [tool["name"] for tool in tools]
    assert {"chat_complete", "list_models"} <= set(names)
    # each Inspector run is a Node start (and over stdio a genroute start) that mostly waits: a few at a time
    with ThreadPoolExecutor(max_workers=3) as pool:
        calls = {
            name: pool.submit(
                inspector, "--method", "tools/call", "--tool-name", name, "--tool-args-json", arguments, *target
            )
            for name, arguments in ((name, json.dumps(KNOWN_ARGUMENTS.get(name, {}))) for name in names)
        }
        results = {name: call.result() for name, call in calls.items()}
    for name, result in results.items():
        assert result["content"] and result["content"][0]["text"].strip(), (name, result)
        if name in KNOWN_ARGUMENTS:
            assert result.get("isError") is not True, (name, result)
        elif result.get("isError"):
            assert result["structuredContent"]["error"]["message"], (name, result)
    # an error result reaches the Inspector as genroute's own message (strict outputSchema validation included)
    refused = inspector(
        "--method", "tools/call", "--tool-name", "chat_complete", "--tool-args-json", '{"top_p": -1}', *target
    )
    assert refused["isError"] is True and "`top_p`" in refused["content"][0]["text"]
    assert refused["structuredContent"]["error"]["param"] == "top_p"
    return results


def test_inspector_over_stdio(inspector: Any, config_path: Path, emulator: Emulator) -> None:
    # the Inspector starts a stdio server with a minimal environment: the provider key is passed with -e
    target = ["-e", f"{EMU_KEY_ENV}=test-key", "--", genroute_command(), "--config", str(config_path), "serve"]
    results = exercise_every_tool(inspector, target)
    assert results["chat_complete"]["structuredContent"]["content"] == "echo: hello inspector"
    assert "gpt-5.5" in results["list_models"]["content"][0]["text"]


def test_inspector_over_http_with_a_key(inspector: Any, config_path: Path, emulator: Emulator) -> None:
    key = new_key(config_path, "inspector")
    with http_gateway(config_path, auth=True) as gateway:
        # --header takes several values: it goes last, after the URL
        target = ["--server-url", gateway.mcp_url, "--header", f"Authorization: Bearer {key}"]
        results = exercise_every_tool(inspector, target)
    assert results["chat_complete"]["structuredContent"]["content"] == "echo: hello inspector"
