"""The provider emulator speaks the upstream APIs faithfully; the gateway's tests depend on that.

Everything goes over real loopback sockets (httpx2 and the openai SDK), as the gateway will.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI
from openai.types import ImagesResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from PIL import Image

try:
    from emulator import Emulator
except ImportError:  # tests/ itself is on sys.path (pytest's default rootdir-less import mode)
    from emulator import Emulator

REPO = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": "Bearer test-key"}
HELLO = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello big wide world"}]
STREAM = {"model": "m", "messages": HELLO, "stream": True}
# ARKA's documented GET /v1/usage example, key for key
USAGE_KEYS = (
    "period",
    "tokens_used",
    "tokens_included",
    "tokens_remaining",
    "overage_tokens",
    "estimated_overage_cost",
    "breakdown_by_model",
)


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(server: Emulator) -> Iterator[Emulator]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="module")
def shared_client(server: Emulator) -> Iterator[httpx2.Client]:
    # one client for the module: building one costs ~0.1 s (TLS context), more than most tests here;
    # verify=False only skips that context, every URL here is plain http on loopback
    with httpx2.Client(base_url=server.base_url, timeout=10, verify=False) as client:
        yield client


@pytest.fixture
def http(emu: Emulator, shared_client: httpx2.Client) -> httpx2.Client:
    return shared_client


def sdk(emu: Emulator, http: httpx2.Client, key: str = "test-key") -> OpenAI:
    return OpenAI(base_url=emu.openai_url, api_key=key, max_retries=0, timeout=10, http_client=http)


def post_chat(http: httpx2.Client, **body: Any) -> httpx2.Response:
    return http.post("/v1/chat/completions", json={"model": "gpt-5.5", "messages": HELLO, **body}, headers=AUTH)


def sse_events(response: httpx2.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]


# ----- chat ---------------------------------------------------------------------------------------


def test_chat_answer_validates_strictly_and_records_the_request(emu: Emulator, http: httpx2.Client) -> None:
    response = post_chat(http, seed=7, temperature=0.2)
    assert response.status_code == 200
    completion = ChatCompletion.model_validate(response.json(), strict=True)
    assert completion.id.startswith("chatcmpl-") and completion.model == "gpt-5.5"
    assert completion.choices[0].message.content == "echo: hello big wide world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 5)  # words
    assert completion.usage.total_tokens == 11
    [rec] = emu.calls("chat")
    assert rec.json["seed"] == 7 and rec.json["temperature"] == 0.2
    assert rec.headers["authorization"] == "Bearer test-key" and rec.method == "POST"
    assert json.loads(rec.body) == rec.json


def test_chat_max_tokens_truncates_with_length_and_reply_overrides(emu: Emulator, http: httpx2.Client) -> None:
    data = post_chat(http, max_tokens=2).json()
    assert data["choices"][0]["message"]["content"] == "echo: hello"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 2
    emu.reply = "fixed answer"
    data = post_chat(http, max_tokens=50).json()
    assert data["choices"][0]["message"]["content"] == "fixed answer"
    assert data["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "gpt-5.5", "messages": []}, "messages"),
        ({"model": "gpt-5.5", "messages": [{"content": "x"}]}, "messages[0]"),
        ({"model": "gpt-5.5", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ],
)
def test_chat_validation_names_the_param(http: httpx2.Client, body: dict[str, Any], param: str) -> None:
    response = http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404_model_not_found(emu: Emulator, http: httpx2.Client) -> None:
    emu.known_models = {"gpt-5.5"}
    assert post_chat(http).status_code == 200
    response = http.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO}, headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def test_stream_through_the_sdk_joins_to_the_full_answer(emu: Emulator, http: httpx2.Client) -> None:
    emu.stream_chunk_delay_ms = 1
    stream = sdk(emu, http).chat.completions.create(
        model="gpt-5.5",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello big wide world"
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 11


def test_stream_events_validate_and_end_with_done(http: httpx2.Client) -> None:
    with http.stream("POST", "/v1/chat/completions", json=STREAM, headers=AUTH) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(e), strict=True) for e in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) == 5 + 1  # one per word, then the finish chunk (no usage chunk unless asked)
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].choices[0].delta.content is None


def test_bad_key_is_401_but_models_and_files_are_open(emu: Emulator, http: httpx2.Client) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(emu, http, key="wrong").chat.completions.create(model="gpt-5.5", messages=HELLO)  # type: ignore[arg-type]
    response = http.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})
    assert response.status_code == 401
    error = {"message": "Invalid API key provided", "type": "invalid_request_error", "param": None}
    assert response.json() == {"error": {**error, "code": "invalid_api_key"}}
    assert http.get("/v1/status").status_code == 401
    models = http.get("/v1/models")
    assert models.status_code == 200 and models.json()["object"] == "list"
    for item in models.json()["data"]:
        Model.model_validate(item, strict=True)
    assert {m["id"] for m in models.json()["data"]} >= {"gpt-5.5", "nano-banana-2", "kling-v2-master"}
    assert http.get("/v1/status", headers=AUTH).json() == {"status": "ok"}


# ----- faults -------------------------------------------------------------------------------------


def test_fail_next_queues_status_envelopes_in_order(emu: Emulator, http: httpx2.Client) -> None:
    emu.fail_next("chat", status=429, headers={"Retry-After": "1"}, times=2)
    emu.fail_next("chat", status=503, body="upstream overloaded")
    for _ in range(2):
        response = post_chat(http)
        assert response.status_code == 429 and response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    response = post_chat(http)
    assert (response.status_code, response.text) == (503, "upstream overloaded")
    assert post_chat(http).status_code == 200
    assert http.get("/v1/models").status_code == 200  # other routes untouched


def test_malformed_body_is_200_json_that_does_not_parse(emu: Emulator, http: httpx2.Client) -> None:
    emu.fail_next("chat", malformed=True)
    response = post_chat(http)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_cut_stream_has_no_finish_and_no_done(emu: Emulator, http: httpx2.Client) -> None:
    emu.fail_next("chat", cut_stream_after=2)
    events: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        with http.stream("POST", "/v1/chat/completions", json=STREAM, headers=AUTH) as response:
            for line in response.iter_lines():
                events.append(line)
    data = [e.removeprefix("data: ") for e in events if e.startswith("data: ")]
    assert len(data) == 2 and "[DONE]" not in data
    assert all(json.loads(e)["choices"][0]["finish_reason"] is None for e in data)
    emu.fail_next("chat", cut_stream_after=1)
    seen: list[str] = []
    with pytest.raises((openai.APIConnectionError, httpx2.TransportError)):
        for chunk in sdk(emu, http).chat.completions.create(model="m", messages=HELLO, stream=True):  # type: ignore[arg-type]
            seen.append(chunk.choices[0].delta.content or "")
    assert seen == ["echo: "]


def test_drop_connection_is_a_transport_error_not_a_status(emu: Emulator, http: httpx2.Client) -> None:
    emu.fail_next("images", drop_connection=True)
    with pytest.raises(httpx2.RemoteProtocolError):
        http.post("/v1/images/generations", json={"model": "m", "prompt": "p"}, headers={"Idempotency-Key": "k1"})
    assert emu.idempotency_keys == ["k1"]  # the body did arrive: a retry must reuse the key
    emu.fail_next("chat", drop_connection=True)
    with pytest.raises(openai.APIConnectionError):
        sdk(emu, http).chat.completions.create(model="m", messages=HELLO)  # type: ignore[arg-type]


def test_latency_global_and_per_fault(emu: Emulator, http: httpx2.Client) -> None:
    emu.latency_ms = 150
    started = time.perf_counter()
    assert http.get("/v1/models").status_code == 200
    assert time.perf_counter() - started >= 0.15
    emu.latency_ms = 0
    emu.fail_next("models", status=200, latency_ms=200)  # 2xx without body: slow but normal answer
    started = time.perf_counter()
    assert http.get("/v1/models").json()["object"] == "list"
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    http.get("/v1/models")
    assert time.perf_counter() - started < 0.15


def test_latency_does_not_block_other_requests(emu: Emulator, http: httpx2.Client) -> None:
    emu.fail_next("chat", status=200, latency_ms=600)
    slow = threading.Thread(target=post_chat, args=(http,))
    slow.start()
    time.sleep(0.05)
    started = time.perf_counter()
    assert http.get("/v1/models").status_code == 200
    assert time.perf_counter() - started < 0.3
    slow.join()


def test_echo_secrets_leaks_key_and_url_in_errors(emu: Emulator, http: httpx2.Client) -> None:
    emu.echo_secrets = True
    response = http.post("/v1/chat/completions?trace=1", json={}, headers={"Authorization": "Bearer sk-canary"})
    url = f"{emu.base_url}/v1/chat/completions?trace=1"
    assert "Bearer sk-canary" in response.json()["error"]["message"] and url in response.json()["error"]["message"]
    assert "sk-canary" in response.headers["x-debug-echo"] and url in response.headers["x-debug-echo"]
    emu.fail_next("chat", status=500)
    assert "test-key" in post_chat(http).json()["error"]["message"]
    aki = http.post("/api/call/llama3_8b_chat", json={"key": "aki-canary", "prompt_input": "x"})
    assert "aki-canary" in aki.json()["error"] and "aki-canary" in aki.headers["x-debug-echo"]
    assert "x-debug-echo" not in post_chat(http).headers


def test_fail_next_rejects_unknown_routes(emu: Emulator) -> None:
    with pytest.raises(ValueError):
        emu.fail_next("chats")


# ----- images, files, video ------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size


def test_images_b64(emu: Emulator, http: httpx2.Client) -> None:
    response = http.post(
        "/v1/images/generations",
        json={"model": "nano-banana-2", "prompt": "a cat", "n": 2, "size": "640x480", "response_format": "b64_json"},
        headers={**AUTH, "Idempotency-Key": "abc"},
    )
    assert response.status_code == 200
    images = ImagesResponse.model_validate(response.json(), strict=True)
    assert images.data is not None and len(images.data) == 2
    assert images.data[0].revised_prompt == "a cat"
    raw = base64.b64decode(images.data[0].b64_json or "")
    assert png_size(raw) == (640, 480)
    assert 10_000 < len(raw) < 640 * 480 * 3 / 4  # compresses, but not to nothing
    assert emu.idempotency_keys == ["abc"] and emu.image_submissions == 1


def test_images_url_served_from_files_with_reference_image(emu: Emulator, http: httpx2.Client) -> None:
    ref = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(ref, "PNG")
    body = {"model": "seedream-4.5", "prompt": "p", "image": base64.b64encode(ref.getvalue()).decode()}
    response = http.post("/v1/images/generations", json=body, headers=AUTH)
    images = ImagesResponse.model_validate(response.json(), strict=True)
    assert images.data is not None and images.data[0].url is not None
    assert images.data[0].url.startswith(f"{emu.base_url}/files/")
    fetched = http.get(images.data[0].url)  # no auth needed, like a storage bucket URL
    assert fetched.headers["content-type"] == "image/png" and png_size(fetched.content) == (1024, 1024)
    emu.fail_next("files", status=503)
    assert http.get(images.data[0].url).status_code == 503
    assert http.get("/files/missing.png").status_code == 404


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"image": "not base64!"}, "image"),
        ({"image": base64.b64encode(b"text").decode()}, "image"),
        ({"size": "big"}, "size"),
        ({"size": "9000x10"}, "size"),
        ({"n": 11}, "n"),
        ({"prompt": ""}, "prompt"),
        ({"response_format": "gif"}, "response_format"),
    ],
)
def test_images_validation(http: httpx2.Client, extra: dict[str, Any], param: str) -> None:
    response = http.post("/v1/images/generations", json={"model": "m", "prompt": "p", **extra}, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_images_4096_is_real_and_quick(http: httpx2.Client) -> None:
    started = time.perf_counter()
    body = {"model": "m", "prompt": "big", "size": "4096x4096", "response_format": "b64_json"}
    response = http.post("/v1/images/generations", json=body, headers=AUTH)
    assert time.perf_counter() - started < 3
    assert png_size(base64.b64decode(response.json()["data"][0]["b64_json"])) == (4096, 4096)


def test_video_lifecycle_processing_then_completed(emu: Emulator, http: httpx2.Client) -> None:
    emu.video_run_s = 0.3
    emu.video_retry_after_s = 1
    body = {"model": "kling-v2-master", "prompt": "waves", "duration": 10}
    submit = http.post("/v1/video/generations", json=body, headers={**AUTH, "Idempotency-Key": "v1"})
    task = submit.json()
    assert submit.status_code == 200 and task["status"] == "processing" and task["model"] == "kling-v2-master"
    first = http.get(f"/v1/video/status/{task['task_id']}", headers=AUTH)
    assert first.json()["status"] == "processing" and 0 <= first.json()["progress"] < 100
    assert first.headers["retry-after"] == "1"
    time.sleep(0.35)
    done = http.get(f"/v1/video/status/{task['task_id']}", headers=AUTH).json()
    video_url = f"{emu.base_url}/files/{task['task_id']}.mp4"
    expected = {"task_id": task["task_id"], "status": "completed", "duration": 10.0, "model": "kling-v2-master"}
    assert done == {**expected, "video_url": video_url}
    video = http.get(done["video_url"])
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[:12] == b"\x00\x00\x00\x18ftypmp42" and 2000 < len(video.content) < 10000
    assert emu.video_submissions == 1 and emu.video_idempotency_keys == ["v1"]


def test_video_failure_unknown_task_and_validation(emu: Emulator, http: httpx2.Client) -> None:
    emu.video_run_s = 0
    emu.video_fail = "content policy"
    task = http.post("/v1/video/generations", json={"model": "m", "prompt": "p"}, headers=AUTH).json()
    status = http.get(f"/v1/video/status/{task['task_id']}", headers=AUTH).json()
    assert status["status"] == "failed"
    assert status["error"] == {"message": "content policy", "code": "generation_failed"}
    emu.video_fail = None  # the outcome is fixed once seen
    assert http.get(f"/v1/video/status/{task['task_id']}", headers=AUTH).json()["status"] == "failed"
    missing = http.get("/v1/video/status/nope", headers=AUTH)
    assert missing.status_code == 404 and "error" in missing.json()
    bad = http.post("/v1/video/generations", json={"model": "m", "prompt": "p", "duration": "5"}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "duration"


# ----- AKI.IO, usage, lifecycle -------------------------------------------------------------------


def test_aki_call_bad_key_unknown_endpoint_and_fault(emu: Emulator, http: httpx2.Client) -> None:
    body = {"key": "test-key", "prompt_input": "system line\nTell a joke", "wait_for_result": True, "temperature": 0.5}
    data = http.post("/api/call/llama3_8b_chat", json=body).json()
    assert data["text"] == "echo: Tell a joke" and data["success"] is True
    assert data["model_name"] == "llama3_8b_chat" and data["max_seq_len"] == 65536
    assert (data["prompt_length"], data["num_generated_tokens"], data["current_context_length"]) == (5, 4, 9)
    assert emu.calls("aki")[0].json["temperature"] == 0.5
    bad = http.post("/api/call/llama3_8b_chat", json={**body, "key": "wrong"})
    assert bad.status_code == 401 and bad.json() == {"success": False, "error": "Invalid API key"}
    emu.known_aki_endpoints = {"llama3_8b_chat"}
    missing = http.post("/api/call/other", json=body)
    assert missing.status_code == 404 and missing.json() == {"success": False, "error": "Endpoint not found"}
    emu.fail_next("aki", status=200, body={"success": False, "error": "worker busy"})
    busy = http.post("/api/call/llama3_8b_chat", json=body)
    assert busy.status_code == 200 and busy.json() == {"success": False, "error": "worker busy"}
    assert http.post("/api/call/llama3_8b_chat", json={**body, "max_gen_tokens": 1}).json()["text"] == "echo:"


def test_usage_counts_served_chat_tokens(emu: Emulator, http: httpx2.Client) -> None:
    post_chat(http)
    http.post("/v1/chat/completions", json={"model": "gpt-5.4", "messages": HELLO, "max_tokens": 1}, headers=AUTH)
    usage = http.get("/v1/usage", headers=AUTH).json()
    assert list(usage) == [*USAGE_KEYS]
    assert usage["breakdown_by_model"] == {"gpt-5.5": 11, "gpt-5.4": 7}
    assert usage["tokens_used"] == 18 and usage["tokens_remaining"] == usage["tokens_included"] - 18
    assert usage["period"]["start"].endswith("-01")
    emu.tokens_included = 10
    over = http.get("/v1/usage", params={"start_date": "2020-01-01", "end_date": "2099-12-31"}, headers=AUTH).json()
    assert over["period"] == {"start": "2020-01-01", "end": "2099-12-31"}
    assert over["overage_tokens"] == 8 and over["tokens_remaining"] == 0 and over["estimated_overage_cost"] > 0
    past = http.get("/v1/usage", params={"start_date": "2020-01-01", "end_date": "2020-01-31"}, headers=AUTH)
    assert past.json()["tokens_used"] == 0
    bad = http.get("/v1/usage", params={"start_date": "yesterday"}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "start_date"


def test_reset_and_unknown_urls(emu: Emulator, http: httpx2.Client) -> None:
    emu.fail_next("status", status=500)
    emu.latency_ms = 5
    http.get("/v1/nothing-here")
    assert http.get("/v1/nothing-here").status_code == 404
    assert emu.requests[0].route is None and emu.requests[0].path == "/v1/nothing-here"
    emu.reset()
    assert emu.requests == [] and emu.latency_ms == 0
    assert http.get("/v1/status", headers=AUTH).status_code == 200


def test_start_stop_and_no_auth_mode(shared_client: httpx2.Client) -> None:
    with Emulator(api_key=None, reply="ok") as emu:
        answer = shared_client.post(f"{emu.openai_url}/chat/completions", json={"model": "m", "messages": HELLO})
        assert answer.json()["choices"][0]["message"]["content"] == "ok"
        url = emu.base_url
    with pytest.raises(httpx2.TransportError):  # refused, or the pooled socket is found closed
        shared_client.get(f"{url}/v1/models", timeout=2)


def test_runs_as_its_own_process(shared_client: httpx2.Client) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--latency-ms", "20"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        base = line.split()[1]
        started = time.perf_counter()
        body = {"model": "m", "messages": HELLO}
        response = shared_client.post(f"{base}/v1/chat/completions", json=body, headers=AUTH)
        assert response.status_code == 200 and time.perf_counter() - started >= 0.02
    finally:
        proc.terminate()
        proc.wait(timeout=10)
