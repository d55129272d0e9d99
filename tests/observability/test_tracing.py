"""OpenTelemetry traces from `genroute serve --http` to a real OTLP/HTTP receiver on loopback, and nothing when off."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from emulator import Emulator
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support import child_env, http_gateway, write_config

pytestmark = pytest.mark.anyio
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


def _traceparent(header: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C traceparent header."""
    version, trace_id, parent_id, _flags = header.split("-")
    assert version == "00"
    return trace_id, parent_id


def _call_span_done(spans: list[ReceivedSpan]) -> bool:
    return any(s.name == "chat gpt-5.5" for s in spans) and sum(s.name == "attempt arkroute" for s in spans) == 2


async def test_a_tool_call_is_one_trace_from_the_client_to_the_upstream(
    config_data: dict[str, Any], tmp_path: Path, emulator: Emulator
) -> None:
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    emulator.fail_next("chat", status=503)  # one retry: two attempts under one call
    with OtlpReceiver() as receiver:
        env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="50")
        with http_gateway(config_path, env=env) as gateway:
            http = create_mcp_http_client(headers={"traceparent": f"00-{trace_id}-{client_span}-01"})
            async with Client(streamable_http_client(gateway.mcp_url, http_client=http)) as client:
                result = await client.call_tool("chat_complete", {"prompt": "hello there", "model": "gpt-5.5"})
                usage = await client.call_tool("get_usage", {})
            spans = receiver.wait_for(_call_span_done)
    assert not result.is_error, result.content
    by_id = {s.span_id: s for s in spans}

    # the mcp SDK's server span for the request, a child of the client's span (its HTTP traceparent header)
    (call,) = [s for s in spans if s.name == "chat gpt-5.5"]
    tool = by_id[call.parent_span_id]
    assert tool.name == "tools/call chat_complete" and tool.kind == SERVER
    assert (tool.trace_id, tool.parent_span_id) == (trace_id, client_span)
    assert tool.resource["service.name"] == "genroute"

    # genroute's span for the call: GenAI conventions' attributes, the ledger's tokens and cost
    answer = result.structured_content
    assert call.trace_id == trace_id and call.kind == CLIENT
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.request.model"] == "gpt-5.5"
    assert call.attributes["gen_ai.response.model"] == "gpt-5.5"
    assert call.attributes["gen_ai.usage.input_tokens"] == answer["usage"]["prompt_tokens"] > 0
    assert call.attributes["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"] > 0
    assert call.attributes["genroute.cost_usd"] == pytest.approx(usage.structured_content["cost_usd"])
    assert call.attributes["genroute.cost_usd"] > 0
    assert call.attributes["genroute.attempts"] == 2

    # one child span per upstream attempt: provider, retry number, status
    attempts = [s for s in spans if s.parent_span_id == call.span_id]
    attempts.sort(key=lambda s: s.attributes["genroute.retry"])
    assert [s.name for s in attempts] == ["attempt arkroute", "attempt arkroute"]
    assert [(s.attributes["genroute.retry"], s.attributes["genroute.upstream.status"]) for s in attempts] == [
        (0, "503"),
        (1, "ok"),
    ]
    assert attempts[0].attributes["http.response.status_code"] == 503 and attempts[0].status_code == 2
    assert all(s.attributes["genroute.provider"] == "arkroute" and s.kind == CLIENT for s in attempts)

    # each upstream request carried its attempt's traceparent: same trace, the attempt span as parent
    sent = [_traceparent(r.headers["traceparent"]) for r in emulator.calls("chat")]
    assert sent == [(trace_id, attempts[0].span_id), (trace_id, attempts[1].span_id)]
    assert not any(key in json.dumps(s.attributes) for s in spans for key in ("test-key", "hello there"))


_OFF_CHECK = """
import sys, anyio
from mcp import Client
from mcp_server.config import load_config
from mcp_server.gateway import Gateway
from mcp_server.server import build_server

async def main():
    gateway = Gateway.from_config(load_config(sys.argv[1]), metrics=True)
    async with Client(build_server(gateway)) as client:
        result = await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.5"})
    assert not result.is_error
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk") or m.startswith("opentelemetry.exp"))
    print(loaded, gateway.observer.tracing)

anyio.run(main)
"""


def test_without_an_otlp_endpoint_no_sdk_is_loaded_and_no_traceparent_is_sent(
    config_data: dict[str, Any], tmp_path: Path, emulator: Emulator
) -> None:
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    done = subprocess.run(
        [sys.executable, "-c", _OFF_CHECK, str(config_path)],
        env=child_env(PYTHONPATH=str(Path(__file__).resolve().parents[2])),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] False"
    (call,) = emulator.calls("chat")
    assert "traceparent" not in call.headers
