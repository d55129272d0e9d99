"""generate_video / get_video_status through the real client: bounded waits, progress, resumable jobs, no double pay."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import ResourceLink

from emulator import Emulator
from emulator.media import MP4
from tests.support import GatewayProcess, in_memory_client, stdio_client, two_replicas, write_config
from tests.support_media import VIDEO_MODEL, file_bytes, media_config, media_files, png_b64

pytestmark = pytest.mark.anyio
BOUND_S = 20  # every wait in these tests ends by then


@pytest.fixture
def config(config_data: dict[str, Any]) -> dict[str, Any]:
    return media_config(config_data)


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str, timeout_s: float = BOUND_S) -> None:
    with anyio.move_on_after(timeout_s):
        while True:
            outcome = check()
            if outcome if isinstance(outcome, bool) else await outcome:
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"{what} within {timeout_s} s")


async def read_json(client: Client, uri: str) -> Any:
    return json.loads((await client.read_resource(uri)).contents[0].text)


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    return result.structured_content["error"]


async def test_video_done_within_wait_is_saved_and_linked(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 0.5
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_video",
            {"prompt": "a dancing robot", "model": VIDEO_MODEL, "duration": 5, "aspect_ratio": "16:9", "wait_s": 15},
        )
        assert not result.is_error, result.content
        out = result.structured_content
        job = await read_json(client, f"jobs://{out['job_id']}")
        recent = await read_json(client, "jobs://recent")
        video = await client.read_resource(out["video"]["uri"])

    assert out["status"] == "completed" and out["model"] == VIDEO_MODEL and out["provider"] == "arkroute"
    assert out["duration"] == 5.0 and out["cost_usd"] == pytest.approx(0.5)
    assert out["url"].startswith(emulator.base_url + "/files/") and out["deduplicated"] is False
    assert out["video"]["mime_type"] == "video/mp4" and out["video"]["uri"].endswith(".mp4")
    assert file_bytes(out["video"]["path"]) == MP4
    assert video.contents[0].mime_type == "video/mp4"
    links = [block for block in result.content if isinstance(block, ResourceLink)]
    assert [str(link.uri) for link in links] == [out["video"]["uri"]]
    assert out["video"]["path"] in result.content[0].text

    submitted = emulator.calls("video_submit")
    assert len(submitted) == 1
    assert submitted[0].json == {
        "model": "kling-v2-master",
        "prompt": "a dancing robot",
        "duration": 5,
        "aspect_ratio": "16:9",
    }
    assert submitted[0].headers["idempotency-key"].startswith("genroute-")
    assert job["status"] == "completed" and job["result"]["video"]["id"] == out["video"]["id"]
    assert job["task_id"] and "idempotency_key" not in job["arguments"]
    assert [j["id"] for j in recent["jobs"]] == [out["job_id"]]


async def test_longer_video_returns_a_job_id_then_status_finishes_it(
    config: dict[str, Any], emulator: Emulator
) -> None:
    emulator.video_run_s = 2.0
    async with in_memory_client(config) as client:
        first = await client.call_tool("generate_video", {"prompt": "slow", "model": VIDEO_MODEL, "wait_s": 0.3})
        assert not first.is_error, first.content
        running = first.structured_content
        done = await client.call_tool("get_video_status", {"job_id": running["job_id"], "wait_s": 15})
    assert running["status"] == "running" and "video" not in running
    assert "get_video_status" in running["hint"] and running["job_id"] in running["hint"]
    assert not done.is_error, done.content
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["job_id"] == running["job_id"]
    assert file_bytes(done.structured_content["video"]["path"]) == MP4
    assert emulator.video_submissions == 1


async def test_upstream_failure_is_reported_with_its_error(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 0.3
    emulator.video_fail = "The prompt violates the content policy"
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_video", {"prompt": "bad", "model": VIDEO_MODEL, "wait_s": 15})
        again = await client.call_tool("get_video_status", {"job_id": result.structured_content["job_id"]})
        job = await read_json(client, f"jobs://{result.structured_content['job_id']}")
    error = error_of(result)
    assert "content policy" in error["message"] and "arkroute" in error["message"]
    assert error["code"] == "generation_failed"
    assert error_of(again) == error
    assert job["status"] == "failed" and job["error"]["code"] == "generation_failed"


async def test_refused_submission_fails_the_job_and_frees_its_request_id(
    config: dict[str, Any], emulator: Emulator
) -> None:
    emulator.video_run_s = 0.3
    emulator.fail_next("video_submit", status=402, body={"error": {"message": "Insufficient credits"}})
    arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 15, "client_request_id": "order-17"}
    async with in_memory_client(config) as client:
        refused = await client.call_tool("generate_video", {**arguments, "wait_s": 0})  # still told in this call
        retried = await client.call_tool("generate_video", arguments)
    error = error_of(refused)
    assert error["status"] == 402 and "Insufficient credits" in error["message"]
    assert not retried.is_error, retried.content
    assert retried.structured_content["status"] == "completed"
    assert retried.structured_content["job_id"] != refused.structured_content["job_id"]
    assert len(emulator.calls("video_submit")) == 2 and emulator.video_submissions == 1


async def test_a_submission_refused_until_the_retries_ran_out_frees_its_request_id(
    config: dict[str, Any], emulator: Emulator
) -> None:
    """503 on every attempt: the retry loop resent it because no job starts on a 503, so the job that failed is not
    one that may run upstream, and the same client_request_id may submit it again (and is not told to check a
    dashboard for a job that cannot exist)."""
    emulator.video_run_s = 0.3
    emulator.fail_next("video_submit", status=503, body={"error": {"message": "busy"}}, times=3)
    arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 15, "client_request_id": "order-18"}
    async with in_memory_client(config) as client:
        refused = await client.call_tool("generate_video", arguments)
        retried = await client.call_tool("generate_video", arguments)
    error = error_of(refused)
    assert error["status"] == 503 and "[3 attempts]" in error["message"] and "dashboard" not in error["message"]
    assert not retried.is_error, retried.content
    assert retried.structured_content["job_id"] != refused.structured_content["job_id"]
    assert len(emulator.calls("video_submit")) == 4 and emulator.video_submissions == 1


async def test_repeated_client_request_id_submits_once(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 1.0
    arguments = {"prompt": "once", "model": VIDEO_MODEL, "client_request_id": "req-42", "wait_s": 15}
    results: list[Any] = []
    async with in_memory_client(config) as client:

        async def call() -> None:
            results.append(await client.call_tool("generate_video", arguments))

        async with anyio.create_task_group() as group:  # two at once, as a client retrying too early would
            group.start_soon(call)
            group.start_soon(call)
        later = await client.call_tool("generate_video", {**arguments, "prompt": "once, again"})
    outputs = [r.structured_content for r in [*results, later]]
    assert all(not r.is_error for r in [*results, later])
    assert len({o["job_id"] for o in outputs}) == 1
    assert sorted(o["deduplicated"] for o in outputs) == [False, True, True]
    assert all(o["status"] == "completed" for o in outputs)
    assert emulator.video_submissions == 1 and len(emulator.calls("video_submit")) == 1


@pytest.mark.parametrize(
    ("arguments", "param", "needs"),
    [
        ({"duration": 7}, "duration", "5, 10"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio", "16:9, 9:16, 1:1"),
        ({"wait_s": 5000}, "wait_s", "from 0 to 300"),
        ({"wait_s": -1}, "wait_s", "from 0 to 300"),
        ({"client_request_id": "has spaces"}, "client_request_id", "1-128 characters"),
        ({"image": "not an image"}, "image", "must be base64 image data"),
        ({"prompt": ""}, "prompt", "empty"),
        ({"model": "nano"}, "model", "image model"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_paid(
    config: dict[str, Any], emulator: Emulator, arguments: dict[str, Any], param: str, needs: str
) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_video", {"prompt": "p", "model": VIDEO_MODEL, **arguments})
        recent = await read_json(client, "jobs://recent")
    error = error_of(result)
    assert error["param"] == param and needs in error["message"]
    assert emulator.calls("video_submit") == [] and recent["jobs"] == []


async def test_unknown_job_id_is_a_clear_error(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool("get_video_status", {"job_id": "vid-00000000000000000000"})
    error = error_of(result)
    assert error["param"] == "job_id" and error["code"] == "job_not_found" and "jobs://recent" in error["message"]


async def test_first_frame_image_is_sent(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 0.2
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_video", {"prompt": "p", "model": VIDEO_MODEL, "image": png_b64(), "wait_s": 15}
        )
    assert not result.is_error, result.content
    assert emulator.calls("video_submit")[0].json["image"] == png_b64()


async def test_a_generated_image_is_a_first_frame_by_its_media_id(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 0.2
    async with in_memory_client(config) as client:
        made = await client.call_tool("generate_image", {"prompt": "a lighthouse", "output": "link"})
        assert not made.is_error, made.content
        saved = made.structured_content["images"][0]
        result = await client.call_tool(
            "generate_video", {"prompt": "p", "model": VIDEO_MODEL, "image": saved["uri"], "wait_s": 15}
        )
    assert not result.is_error, result.content
    sent = emulator.calls("video_submit")[0].json["image"]
    assert base64.b64decode(sent) == await anyio.Path(saved["path"]).read_bytes()


async def test_retry_after_spaces_the_polls(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 3.0
    emulator.video_retry_after_s = 1.2
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_video", {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 15})
    assert result.structured_content["status"] == "completed"
    polls = [call.at for call in emulator.calls("video_status")]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert len(polls) >= 2 and min(gaps) >= 1.1  # never sooner than the upstream asked (poll_initial is 0.2)


async def test_cancel_stops_the_wait_but_not_the_job(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 1.5
    async with in_memory_client(config) as client:
        with anyio.move_on_after(BOUND_S):
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    await client.call_tool("generate_video", {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 60})

                group.start_soon(call)
                await eventually(lambda: len(emulator.calls("video_status")) >= 1, "no status poll")
                group.cancel_scope.cancel()  # the client gives up on this call

        async def finished() -> bool:
            jobs = (await read_json(client, "jobs://recent"))["jobs"]
            return bool(jobs) and jobs[0]["status"] == "completed"

        await eventually(finished, "the job did not finish after the cancel")  # nobody is waiting now
        job = (await read_json(client, "jobs://recent"))["jobs"][0]
        status = await client.call_tool("get_video_status", {"job_id": job["id"], "wait_s": 0})
    assert file_bytes(job["result"]["video"]["path"]) == MP4
    assert status.structured_content["status"] == "completed"
    assert emulator.video_submissions == 1


async def test_progress_notifications_flow_over_stdio(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    emulator.video_run_s = 1.5
    values: list[float] = []
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        values.append(progress)
        messages.append(message or "")

    path = write_config(tmp_path / "genroute.toml", config)
    async with stdio_client(path) as client:
        result = await client.call_tool(
            "generate_video", {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 15}, progress_callback=on_progress
        )
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "completed"
    assert len(values) >= 3 and values == sorted(values) and len(set(values)) == len(values)
    assert any(f"{result.structured_content['job_id']}: running" in m and "elapsed" in m for m in messages)
    assert any("provider at" in m for m in messages)  # the emulator reports progress percentages


async def _submit_then_kill(gateway: GatewayProcess, arguments: dict[str, Any], ready: Callable[[], bool]) -> None:
    """Call generate_video over HTTP and SIGKILL the server once `ready()` says so; the call's fate is irrelevant."""
    async with anyio.create_task_group() as group:

        async def call() -> None:
            try:
                async with Client(gateway.mcp_url) as client:
                    await client.call_tool("generate_video", arguments)
            except Exception:  # the server died under the call
                pass

        group.start_soon(call)
        await eventually(ready, "the server never reached the point to kill it")
        gateway.kill()
        group.cancel_scope.cancel()


async def test_killed_mid_job_resumes_after_restart(config: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    emulator.video_run_s = 1.0  # still running at the kill (right after the first poll), done while the server is down
    config["media"]["video_job_lease_s"] = 2  # a killed server's claim on its jobs runs out quickly
    path = write_config(tmp_path / "genroute.toml", config)
    first = GatewayProcess(path).start()
    try:
        arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 60}
        await _submit_then_kill(first, arguments, lambda: len(emulator.calls("video_status")) >= 1)
    finally:
        first.stop()
    polls_before = len(emulator.calls("video_status"))
    with GatewayProcess(path) as second:
        # resumed by the server itself at start: polls continue and the file arrives with no client asking
        await eventually(lambda: len(emulator.calls("video_status")) > polls_before, "no polling after restart")
        await eventually(lambda: any(p.suffix == ".mp4" for p in media_files(config)), "no video file")
        async with Client(second.mcp_url) as client:
            job = (await read_json(client, "jobs://recent"))["jobs"][0]
            status = await client.call_tool("get_video_status", {"job_id": job["id"], "wait_s": 15})
    assert not status.is_error, status.content
    assert status.structured_content["status"] == "completed"
    assert file_bytes(status.structured_content["video"]["path"]) == MP4
    assert emulator.video_submissions == 1 and len(emulator.calls("video_submit")) == 1
    assert "resumed tracking of 1 unfinished video job" in second.stderr()


async def test_killed_mid_submission_fails_clearly_instead_of_paying_twice(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """The default: a provider not known to honour Idempotency-Key never gets a lost submission again."""
    emulator.fail_next("video_submit", status=200, latency_ms=2000)  # the answer comes after the server died
    config["media"]["video_job_lease_s"] = 2  # a killed server's claim on its jobs runs out quickly
    path = write_config(tmp_path / "genroute.toml", config)
    first = GatewayProcess(path).start()
    try:
        arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 60, "client_request_id": "kill-0"}
        await _submit_then_kill(first, arguments, lambda: len(emulator.calls("video_submit")) >= 1)
    finally:
        first.stop()
    with GatewayProcess(path) as second:
        async with Client(second.mcp_url) as client:
            again = await client.call_tool(
                "generate_video", {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 5, "client_request_id": "kill-0"}
            )
    error = error_of(again)
    assert error["code"] == "submission_outcome_unknown" and "dashboard" in error["message"]
    assert len(emulator.calls("video_submit")) == 1  # neither resent at restart nor by the repeated request


async def test_killed_mid_submission_resends_with_the_same_idempotency_key(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """A provider configured as honouring Idempotency-Key gets the lost submission again, with the same key."""
    config["providers"]["arkroute"]["honours_idempotency_key"] = True
    emulator.video_run_s = 0.5
    emulator.fail_next("video_submit", status=200, latency_ms=2000)  # the answer comes after the server died
    config["media"]["video_job_lease_s"] = 2  # a killed server's claim on its jobs runs out quickly
    path = write_config(tmp_path / "genroute.toml", config)
    first = GatewayProcess(path).start()
    try:
        arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 60, "client_request_id": "kill-1"}
        await _submit_then_kill(first, arguments, lambda: len(emulator.calls("video_submit")) >= 1)
    finally:
        first.stop()
    with GatewayProcess(path) as second:
        await eventually(lambda: len(emulator.calls("video_submit")) >= 2, "the submission was not resent")
        async with Client(second.mcp_url) as client:
            again = await client.call_tool(
                "generate_video", {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 15, "client_request_id": "kill-1"}
            )
    assert not again.is_error, again.content
    assert again.structured_content["status"] == "completed" and again.structured_content["deduplicated"]
    keys = emulator.video_idempotency_keys
    assert len(keys) == 2 and keys[0] == keys[1]  # a provider honouring the key bills it once
    assert len(emulator.calls("video_submit")) == 2


async def test_replicas_on_one_database_submit_and_download_a_job_once(
    config: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """Asked about a job another replica is submitting and tracking, a replica follows it through the database:
    no second submission (which a provider not honouring Idempotency-Key would bill again), no second download."""
    config["server"].update(database_settings)
    emulator.video_run_s = 1.5
    emulator.fail_next("video_submit", status=200, latency_ms=1500)  # the submission is in flight for a while
    arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 30, "client_request_id": "shared-1"}
    first, second = two_replicas(write_config(tmp_path / "genroute.toml", config))
    with first, second:
        async with Client(first.mcp_url) as one, Client(second.mcp_url) as two:
            results: dict[str, Any] = {}

            async def call(name: str, client: Client) -> None:
                results[name] = await client.call_tool("generate_video", arguments)

            async with anyio.create_task_group() as group:
                group.start_soon(call, "first", one)
                await eventually(lambda: len(emulator.calls("video_submit")) >= 1, "no submission")
                group.start_soon(call, "second", two)  # the same request, to the other replica, mid-submission
            status = await two.call_tool("get_video_status", {"job_id": results["first"].structured_content["job_id"]})
        follower_log = second.stderr()
    for result in (results["first"], results["second"], status):
        assert not result.is_error, result.content
        assert result.structured_content["status"] == "completed"
    assert results["second"].structured_content["deduplicated"]
    assert results["second"].structured_content["video"] == results["first"].structured_content["video"]
    assert len(emulator.calls("video_submit")) == 1 and emulator.video_submissions == 1
    assert len(emulator.calls("files")) == 1  # downloaded once, by the replica that tracks the job
    assert "submitted to" not in follower_log and "saved" not in follower_log


async def test_a_stopped_replicas_job_is_taken_over_by_another(
    config: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    """A replica killed mid-job: once its lease runs out, a live replica takes the job over on its own."""
    config["server"].update(database_settings)
    config["media"]["video_job_lease_s"] = 2
    emulator.video_run_s = 2.0
    first, second = two_replicas(write_config(tmp_path / "genroute.toml", config))
    with second:
        first.start()
        try:
            arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 60}
            await _submit_then_kill(first, arguments, lambda: len(emulator.calls("video_status")) >= 1)
        finally:
            first.stop()
        # no client asks: the live replica's sweep finds the job whose lease ran out
        await eventually(lambda: any(p.suffix == ".mp4" for p in media_files(config)), "no video file")
        async with Client(second.mcp_url) as client:
            job = (await read_json(client, "jobs://recent"))["jobs"][0]
            status = await client.call_tool("get_video_status", {"job_id": job["id"], "wait_s": 15})
        taken_over = second.stderr()
    assert not status.is_error, status.content
    assert status.structured_content["status"] == "completed"
    assert file_bytes(status.structured_content["video"]["path"]) == MP4
    assert len(emulator.calls("video_submit")) == 1 and len(emulator.calls("files")) == 1
    assert "resumed tracking of 1 unfinished video job" in taken_over
