"""Secret hygiene canary: a provider key that the upstream echoes back in every error must appear in no
tool result, error, resource, prompt or log line, not even in part; nor may the client's own key."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from tests.emulator import Emulator
from tests.support import EMU_KEY_ENV, child_env, http_gateway, write_config
from tests.support_access import client, new_key

pytestmark = pytest.mark.anyio

# The key the upstream echoes is `Bearer <canary>` (OpenAI protocol) or bare `<canary>` (AKI.IO puts it in the
# JSON body). Padding puts the echoed key across the 500-character cut genroute makes in error messages, so
# a redaction that ran after the cut would leave half a key behind.
PAD = "x" * 440

# (route, fault, tool arguments, stream): every way a provider call can fail that the emulator can produce
FAULTS: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("chat", {"status": 400, "body": {"error": {"message": "bad max_tokens", "type": "invalid_request"}}}, {}, False),
    ("chat", {"status": 401}, {}, False),
    ("chat", {"status": 403}, {}, False),
    ("chat", {"status": 404}, {}, False),
    ("chat", {"status": 422}, {}, False),
    ("chat", {"status": 429, "headers": {"retry-after": "1"}}, {}, False),
    ("chat", {"status": 500}, {}, False),
    ("chat", {"status": 502, "body": "<html>Bad Gateway</html>"}, {}, False),
    ("chat", {"status": 503, "body": PAD}, {}, False),
    ("chat", {"status": 504, "body": PAD + "y" * 9}, {}, False),
    ("chat", {"status": 200, "malformed": True}, {}, False),
    ("chat", {"status": 401}, {}, True),
    ("chat", {"status": 500, "body": PAD}, {}, True),
    ("chat", {"status": 200, "cut_stream_after": 2}, {}, True),
    ("chat", {"status": 200, "malformed": True}, {}, True),
    ("chat", {"drop_connection": True}, {}, False),
    ("aki", {"status": 400, "body": {"success": False, "error": "prompt too long"}}, {"model": "llama3-8b"}, False),
    ("aki", {"status": 200, "body": {"success": False, "error": "worker busy"}}, {"model": "llama3-8b"}, False),
    ("aki", {"status": 500, "body": PAD + "abcdefghijkl"}, {"model": "llama3-8b"}, False),
    ("aki", {"status": 503, "body": PAD + "abcdefghijklmnopqr"}, {"model": "llama3-8b"}, False),
    ("aki", {"status": 200, "malformed": True}, {"model": "llama3-8b"}, False),
    ("aki", {"drop_connection": True}, {"model": "llama3-8b"}, False),
]


def fragments(secret: str, size: int = 10) -> set[str]:
    """Every `size`-character piece of the secret's random part: a leak of any part of it is a leak."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def dump(value: Any) -> str:
    return json.dumps(value, default=str) if not isinstance(value, str) else value


async def test_provider_and_client_keys_never_leak(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    canary = secrets.token_hex(24)
    emulator.api_key = canary
    emulator.echo_secrets = True
    config_data["routing"]["max_retries"] = 0  # every queued fault must reach the client, not be retried away
    config_data["routing"]["cooldown_s"] = 0.01
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    client_key = new_key(config_path, "canary-client")
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    env = child_env(**{EMU_KEY_ENV: canary})
    with http_gateway(config_path, auth=True, env=env) as gateway:
        async with client(gateway.mcp_url, client_key) as session:
            ok = await session.call_tool("chat_complete", {"prompt": "hello"})
            assert not ok.is_error, ok.content
            results = []
            for route, fault, arguments, stream in FAULTS:
                emulator.fail_next(route, **fault)
                result = await session.call_tool(
                    "chat_complete", {"prompt": "hi", **arguments}, progress_callback=on_progress if stream else None
                )
                results.append(result)
                seen += [dump(block.model_dump()) for block in result.content]
                seen.append(dump(result.structured_content))
            for resource in (await session.list_resources()).resources:
                seen.append(dump((await session.read_resource(str(resource.uri))).model_dump()))
            for model in ("gpt-5.5", "llama3-8b", "no-such-model"):
                try:
                    seen.append(dump((await session.read_resource(f"models://{model}")).model_dump()))
                except MCPError as error:
                    seen.append(str(error))
            seen.append(dump((await session.get_prompt("blog-writer", {"topic": "t", "audience": "a"})).model_dump()))
        stderr = gateway.stderr()

    # the test means something only if genroute really sent the canary and the upstream really echoed it
    assert emulator.calls("chat")[0].headers["authorization"] == f"Bearer {canary}"
    assert all(result.is_error for result in results), [r.content for r in results if not r.is_error]
    assert "[redacted]" in " ".join(seen)
    assert "DEBUG" in stderr and "chat_complete failed" in stderr

    visible = "\n".join(seen)
    for secret in (canary, client_key):
        leaked = {piece for piece in fragments(secret) if piece in visible or piece in stderr}
        assert not leaked, f"pieces of a secret leaked: {sorted(leaked)[:3]}"
    assert "Traceback" not in visible
