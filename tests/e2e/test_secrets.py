"""Secret hygiene canary: a provider key that the upstream echoes back in every error must appear in no
tool result, error, resource, prompt or log line, not even in part; nor may the client's own key."""

from __future__ import annotations

import base64
import io
import json
import secrets
import subprocess
import time
import wave
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from emulator import Emulator
from emulator.chat import aki_error, envelope
from mcp_server.reliability.health_file import read_reports
from tests.support import EMU_KEY_ENV, child_env, genroute_argv, http_gateway, write_config
from tests.support_access import client, new_key
from tests.support_audio import EDIT_MODEL, SPEECH_MODEL, TRANSCRIBE_MODEL, audio_config
from tests.support_media import IMAGE_MODEL, VIDEO_MODEL, png_b64

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


# ----- a key echoed in any field or header of any upstream error ------------------------------------------

# (error field, response header) the emulator puts the key into, one pair per round: every field an upstream
# error has, one it does not ("metadata"), and headers genroute reads (Retry-After) or not
ECHO_INTO = [
    ("message", "x-request-id"),
    ("param", "retry-after"),
    ("code", "x-error-detail"),
    ("type", "www-authenticate"),
    ("metadata", "retry-after-ms"),
]
ENVELOPE = envelope(400, "bad request")  # the body of every faulted answer, whatever its status
# every upstream route a tool reaches: chat (plain and streamed), images, edits, speech, transcription, video, usage
FAULTED_ROUTES = ("chat", "chat", "images", "image_edits", "speech", "transcriptions", "video_submit", "usage")


def wav_bytes(seconds: float) -> bytes:
    """Silence as a 16 kHz mono WAV: an input transcribe_audio takes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0\0" * int(16000 * seconds))
    return out.getvalue()


WAV_DATA_URL = "data:audio/wav;base64," + base64.b64encode(wav_bytes(0.2)).decode()


def leaks(secret: str, *texts: str | bytes) -> set[str]:
    """Pieces of `secret`, bare or URL-encoded, found in any of `texts`."""
    pieces = fragments(secret) | fragments(quote(secret, safe=""))
    found = set()
    for text in texts:
        haystack = text.decode(errors="replace") if isinstance(text, bytes) else text
        found |= {piece for piece in pieces if piece in haystack}
    return found


def files_under(root: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def wait_for_health_errors(health_dir: Path, providers: set[str]) -> None:
    """Until the server's health file shows a last error for each of `providers` (it writes within a second)."""
    for _ in range(100):
        reports = read_reports(health_dir)
        if reports and providers <= {p.provider for p in reports[0].providers if p.last_error}:
            return
        time.sleep(0.05)
    raise AssertionError(f"no health file with errors for {providers} in {health_dir}")


def run_check(config_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [*genroute_argv(), "--config", str(config_path), "--log-level", "DEBUG", "check"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


async def test_a_key_echoed_in_any_error_field_or_header_is_kept_out_of_everything(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    canary = f"sk/{secrets.token_hex(12)}+{secrets.token_hex(12)}="  # '/', '+', '=': URL-encoding changes it
    emulator.api_key, emulator.echo_secrets, emulator.video_run_s = canary, True, 0
    emulator.video_fail = "content policy"  # every video that gets past submission and polling fails upstream
    # every kind: chat, image, image edits, video, speech, transcription (issue 17's tools included)
    config = audio_config(config_data, video_poll_initial_s=0.05, video_poll_max_s=0.1)
    config["routing"].update(max_retries=0, cooldown_s=0)  # every fault reaches the caller, none is skipped
    config["providers"]["arkroute"]["discover"] = True
    config_path = write_config(tmp_path / "genroute.toml", config)
    env = child_env(**{EMU_KEY_ENV: canary})
    emulator.echo_field, emulator.echo_header = "code", "x-error-detail"
    emulator.fail_next("models", status=400, body=ENVELOPE)  # discovery at start
    video = {"model": VIDEO_MODEL, "duration": 5, "wait_s": 15}
    seen: list[str] = []
    params: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async def call(tool: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
        result = await session.call_tool(tool, arguments, **kwargs)
        assert result.is_error, (tool, result.content)
        seen.extend([dump(block.model_dump()) for block in result.content] + [dump(result.structured_content)])
        return result

    with http_gateway(config_path, env=env) as gateway:
        async with Client(gateway.mcp_url) as session:
            for field, header in ECHO_INTO:
                emulator.echo_field, emulator.echo_header = field, header
                # 5xx: provider faults, which health records (with their code) for status://providers and check
                for route in (
                    "chat",
                    "chat",
                    "images",
                    "image_edits",
                    "speech",
                    "transcriptions",
                    "video_submit",
                    "usage",
                ):
                    emulator.fail_next(route, status=503, body=ENVELOPE)
                emulator.fail_next("video_status", status=400, body=ENVELOPE, times=3)  # 3 refused polls fail a job
                emulator.fail_next("aki", status=503, body=aki_error("overloaded"))
                emulator.fail_next("aki", status=200, body=aki_error("worker busy"))
                chat = await call("chat_complete", {"prompt": "hi"})
                params.append(str(chat.structured_content["error"].get("param")))
                await call("chat_complete", {"prompt": "hi"}, progress_callback=on_progress)
                await call("generate_image", {"prompt": "p", "model": IMAGE_MODEL})
                await call("generate_image", {"prompt": "p", "model": EDIT_MODEL, "reference_images": [png_b64()]})
                await call("generate_speech", {"text": "hello", "model": SPEECH_MODEL})
                await call("transcribe_audio", {"audio": WAV_DATA_URL, "model": TRANSCRIBE_MODEL})
                await call("generate_video", {"prompt": "refused at submission", **video})
                await call("generate_video", {"prompt": "refused while polled", **video})
                await call("generate_video", {"prompt": "failed upstream", **video})
                await call("chat_complete", {"prompt": "hi", "model": "llama3-8b"})
                await call("chat_complete", {"prompt": "hi", "model": "llama3-8b"})
                usage = await session.call_tool("get_usage", {"source": "provider"})
                seen.append(dump(usage.structured_content))
                assert "arkroute" in usage.structured_content["provider"], usage.content
            for uri in ("status://providers", "jobs://recent"):
                seen.append(dump((await session.read_resource(uri)).model_dump()))
        wait_for_health_errors(tmp_path / "data" / "health", {"arkroute", "aki"})
        emulator.fail_next("models", status=400, body=ENVELOPE)
        check = run_check(config_path, env)
        while_serving = files_under(tmp_path)
    stderr = gateway.stderr()
    after = files_under(tmp_path)

    data = [*while_serving.values(), *after.values()]
    leaked = leaks(canary, *seen, stderr, check.stdout, check.stderr, *data)
    assert not leaked, f"pieces of the provider key leaked: {sorted(leaked)[:3]}"
    # which means something only if genroute sent the key, the upstream echoed it and genroute redacted it,
    # and the places looked at were there
    assert emulator.calls("chat")[0].headers["authorization"] == f"Bearer {canary}"
    for route in ("image_edits", "speech", "transcriptions"):  # each round's faulted call reached its upstream
        assert len(emulator.calls(route)) == len(ECHO_INTO), route
    assert "[redacted]" in params[ECHO_INTO.index(("param", "retry-after"))]
    assert "arkroute: error: Provider 'arkroute' answered HTTP 400" in check.stdout, check.stdout + check.stderr
    assert "last error:" in check.stdout and "DEBUG" in stderr and "discovery on provider arkroute failed" in stderr
    assert any(name.endswith(".json") and "/health/" in name for name in while_serving)
    assert any(name.endswith("genroute.db-wal") for name in while_serving)


# ----- what a non-admin key sees of other keys' failures -----------------------------------------------------


async def read_json(session: Client, uri: str) -> Any:
    return json.loads((await session.read_resource(uri)).contents[0].text)


async def test_a_non_admin_key_sees_provider_state_but_no_upstream_error_text(
    config_path: Path, emulator: Emulator
) -> None:
    admin, tenant = new_key(config_path, "ops", "--admin"), new_key(config_path, "tenant")
    text = "Your prompt 'merger plans for ACME' was flagged"  # the upstream quoting another key's request
    with http_gateway(config_path, auth=True) as gateway:
        async with client(gateway.mcp_url, admin) as ops, client(gateway.mcp_url, tenant) as user:
            emulator.fail_next("chat", status=503, body=envelope(503, text), times=3)  # every attempt fails
            failed = await ops.call_tool("chat_complete", {"prompt": "merger plans for ACME"})
            seen_by_tenant = (await user.read_resource("status://providers")).contents[0].text
            seen_by_admin = await read_json(ops, "status://providers")
            refused = await user.call_tool("get_usage", {"source": "provider"})
            own = await user.call_tool("get_usage", {})
            everyone = await ops.call_tool("get_usage", {"source": "provider"})
    assert failed.is_error and text in failed.structured_content["error"]["message"]

    tenant_view = {p["provider"]: p for p in json.loads(seen_by_tenant)["providers"]}
    admin_view = {p["provider"]: p for p in seen_by_admin["providers"]}
    assert tenant_view["arkroute"]["state"] == admin_view["arkroute"]["state"] == "cooling_down"
    assert tenant_view["arkroute"]["failures_last_minute"] == 3 and tenant_view["aki"]["state"] == "ok"
    assert tenant_view["arkroute"]["last_error"] is None and "ACME" not in seen_by_tenant
    assert text in admin_view["arkroute"]["last_error"]

    assert refused.is_error, refused.content
    error = refused.structured_content["error"]
    assert (error["code"], error["param"], error["status"]) == ("forbidden", "source", 403)
    assert "admin keys only" in error["message"] and "source='local'" in error["message"]
    assert not own.is_error and own.structured_content["caller"] == "tenant"
    assert not everyone.is_error and "arkroute" in everyone.structured_content["provider"]
