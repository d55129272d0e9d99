"""Property-based bad input: random and malformed arguments to every tool and prompt (listed from the server,
so new ones are covered automatically) and random bytes to the HTTP endpoint. The server never crashes and
always answers with an isError result, a JSON-RPC error or a 4xx; no traceback ever reaches the client.

Afterwards the usage ledger must agree with what reached the providers: one record per upstream call, totals
equal to the sum of their breakdown, no negative cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import Prompt, Tool

from emulator import Emulator
from tests.support import GatewayProcess, http_gateway, write_config
from tests.support_access import INIT, MCP_HEADERS
from tests.support_audio import audio_config

FUZZ = settings(
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
TYPE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=60) | st.sampled_from(["", " ", "gpt-5.5", "llama3-8b", "\x00", "🙂" * 5]),
    "integer": st.integers(min_value=-(2**63), max_value=2**63),
    "number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
    "boolean": st.booleans(),
    "array": st.lists(json_values, max_size=4),
    "object": st.dictionaries(st.text(max_size=10), json_values, max_size=4),
}
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot", ""]), "content": st.text(max_size=40)}
)


def property_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values near the property's declared type (often right, often subtly wrong) or of any type at all."""
    types: list[str] = []
    for option in [schema, *schema.get("anyOf", [])]:
        if isinstance(option.get("type"), str):
            types.append(option["type"])
    near = [TYPE_VALUES[t] for t in types if t in TYPE_VALUES]
    if "enum" in schema or any("enum" in o for o in schema.get("anyOf", [])):
        near.append(st.sampled_from([v for o in [schema, *schema.get("anyOf", [])] for v in o.get("enum", [])]))
    if "array" in types:
        near.append(st.lists(message, max_size=3))
    return st.one_of(*near, json_values) if near else json_values


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = schema.get("properties", {})
    chosen = st.fixed_dictionaries({}, optional={name: property_values(p) for name, p in properties.items()})
    extra = st.dictionaries(st.text(max_size=12), json_values, max_size=3)
    return st.one_of(chosen, st.tuples(chosen, extra).map(lambda pair: {**pair[1], **pair[0]}), extra)


def assert_clean(text: str) -> None:
    assert "Traceback" not in text and 'File "/' not in text, text[:500]


@pytest.fixture
def served(
    config_data: dict[str, Any], tmp_path: Path, emulator: Emulator
) -> Iterator[tuple[GatewayProcess, BlockingPortal, Client]]:
    config_data["routing"]["max_retries"] = 0  # one upstream request per logical call: the ledger must match
    audio_config(config_data)  # every media tool listed, and fuzzed; small images, no video (its waits are long)
    for name in ("nano", "nano-b64", "kling"):
        del config_data["models"][name]
    config_data["models"]["editor"].update(sizes=["256x256"], max_n=2)
    config_path = write_config(tmp_path / "fuzz.toml", config_data)
    with http_gateway(config_path) as gateway, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(gateway.mcp_url, mode="legacy")) as client:
            yield gateway, portal, client


def test_random_arguments_to_every_tool_and_prompt(
    served: tuple[GatewayProcess, BlockingPortal, Client], emulator: Emulator
) -> None:
    gateway, portal, client = served
    tools: list[Tool] = portal.call(client.list_tools).tools
    prompts: list[Prompt] = portal.call(client.list_prompts).prompts
    assert {"chat_complete", "list_models"} <= {t.name for t in tools}
    targets = [("tool", t.name, t.input_schema) for t in tools]
    targets += [
        ("prompt", p.name, {"properties": {a.name: {"type": "string"} for a in p.arguments or []}}) for p in prompts
    ]
    outcomes = {"error": 0, "ok": 0, "jsonrpc": 0}

    @settings(FUZZ, max_examples=100)
    @given(data=st.data())
    def call_with_random_arguments(data: st.DataObject) -> None:
        kind, name, schema = data.draw(st.sampled_from(targets), label="target")
        arguments = data.draw(arguments_for(schema), label="arguments")
        try:
            if kind == "prompt":
                result: Any = portal.call(client.get_prompt, name, {k: str(v) for k, v in arguments.items()})
                assert_clean(result.model_dump_json())
                outcomes["ok"] += 1
                return
            result = portal.call(client.call_tool, name, arguments)
        except MCPError as error:  # a JSON-RPC error is an acceptable answer to nonsense
            assert_clean(str(error))
            outcomes["jsonrpc"] += 1
            return
        text = " ".join(getattr(block, "text", "") for block in result.content)
        assert_clean(text)
        if result.is_error:
            assert text.strip(), "an error result must say what went wrong"
            envelope = (result.structured_content or {}).get("error")
            assert isinstance(envelope, dict) and envelope["message"] and envelope["type"], result.structured_content
            outcomes["error"] += 1
        else:
            assert result.structured_content is not None
            outcomes["ok"] += 1

    call_with_random_arguments()
    alive = portal.call(client.call_tool, "chat_complete", {"prompt": "still there?"})
    assert gateway.process is not None and gateway.process.poll() is None
    assert not alive.is_error and alive.structured_content["content"] == "echo: still there?"
    assert outcomes["error"] > 0 and outcomes["ok"] > 0  # the strategies reached both sides

    # the ledger stays consistent: exactly one record per call that reached a provider, totals that add up
    usage = portal.call(client.call_tool, "get_usage", {"group_by": "model"}).structured_content
    routes = ("chat", "aki", "images", "video_submit", "image_edits", "speech", "transcriptions")
    upstream_calls = sum(len(emulator.calls(route)) for route in routes)
    assert usage["requests"] == upstream_calls
    assert usage["requests"] == sum(row["requests"] for row in usage["breakdown"].values())
    assert usage["errors"] == sum(row["errors"] for row in usage["breakdown"].values())
    assert 0 <= usage["errors"] <= usage["requests"] and usage["cost_usd"] >= 0


def _session(url: str) -> dict[str, str]:
    opened = httpx2.post(url, headers=MCP_HEADERS, content=json.dumps(INIT).encode(), timeout=10)
    assert opened.status_code == 200
    session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    sent = httpx2.post(url, headers={**MCP_HEADERS, **session}, content=json.dumps(initialized).encode(), timeout=10)
    assert sent.status_code == 202
    return session


jsonrpc_shaped = st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "method": st.text(max_size=20)
        | st.sampled_from(
            [
                "tools/call",
                "tools/list",
                "prompts/get",
                "resources/read",
                "initialize",
                "completion/complete",
                "logging/setLevel",
                "resources/subscribe",
                "ping",
            ]
        ),
    },
    optional={"id": json_scalars, "params": json_values},
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    jsonrpc_shaped.map(lambda v: json.dumps(v).encode()),
    st.lists(jsonrpc_shaped, max_size=3).map(lambda v: json.dumps(v).encode()),
)
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(["application/json", "text/plain", "", "application/json; charset=latin-1"]),
        "accept": st.sampled_from(["application/json", "text/event-stream", "*/*", ""]),
        "mcp-protocol-version": st.sampled_from(["2025-11-25", "2026-07-28", "1999-01-01", "x"]),
        "mcp-session-id": st.text(alphabet="0123456789abcdef", max_size=32),
    },
)


def test_random_bytes_to_the_http_endpoint(config_path: Path, emulator: Emulator) -> None:
    statuses: dict[int, int] = {}
    with http_gateway(config_path) as gateway, httpx2.Client(timeout=10) as http:
        session = _session(gateway.mcp_url)

        @settings(FUZZ, max_examples=80)
        @given(body=bodies, headers=header_sets, use_session=st.booleans(), method=st.sampled_from(["POST", "GET"]))
        def send(body: bytes, headers: dict[str, str], use_session: bool, method: str) -> None:
            sent = {**MCP_HEADERS, **headers, **(session if use_session else {})}
            if method == "GET":  # a GET opens the SSE stream: only its status line matters here
                with http.stream("GET", gateway.mcp_url, headers=sent) as answer:
                    status = answer.status_code
            else:
                answer = http.post(gateway.mcp_url, headers=sent, content=body)
                status = answer.status_code
                assert_clean(answer.text)
            statuses[status] = statuses.get(status, 0) + 1
            assert status < 500, (status, body[:200], headers)

        send()
        assert gateway.process is not None and gateway.process.poll() is None
        assert http.get(gateway.url + "/healthz").status_code == 200
    assert any(400 <= s < 500 for s in statuses), statuses
