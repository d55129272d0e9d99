"""Images and videos in the ledger: counted, priced and budgeted like chat; video status polls cost nothing."""

from __future__ import annotations

from typing import Any

import pytest

from emulator import Emulator
from tests.support import in_memory_client, ledger
from tests.support_media import IMAGE_MODEL, VIDEO_MODEL, media_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def config(config_data: dict[str, Any]) -> dict[str, Any]:
    return media_config(config_data)


async def test_images_are_counted_and_priced(config: dict[str, Any]) -> None:
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": IMAGE_MODEL, "n": 2})
        report = (await client.call_tool("get_usage", {})).structured_content
    assert not result.is_error, result.content
    assert (report["requests"], report["images"], report["cost_usd"]) == (1, 2, pytest.approx(0.04))
    (row,) = ledger(config)
    assert (row["tool"], row["model"], row["images"], row["outcome"]) == ("generate_image", IMAGE_MODEL, 2, "ok")


async def test_a_video_is_charged_once_at_submission_with_its_job(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.video_run_s = 1.0
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_video", {"prompt": "a robot", "model": VIDEO_MODEL, "duration": 5, "wait_s": 15}
        )
        report = (await client.call_tool("get_usage", {})).structured_content
    out = result.structured_content
    assert out["status"] == "completed", result.content
    assert len(emulator.calls("video_status")) >= 1  # it was polled...
    assert report["requests"] == 1  # ...but only the submission is a billable call
    assert (report["video_seconds"], report["cost_usd"]) == (5.0, pytest.approx(0.5))
    (row,) = ledger(config)
    assert (row["tool"], row["job_id"], row["video_seconds"]) == ("generate_video", out["job_id"], 5.0)


async def test_a_video_past_the_budget_is_refused_before_submission(config: dict[str, Any], emulator: Emulator) -> None:
    config["budget"] = {"monthly_usd": 0.3}
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_video", {"prompt": "a robot", "model": VIDEO_MODEL, "duration": 5, "wait_s": 15}
        )
    assert result.is_error, result.content
    error = result.structured_content["error"]
    assert (error["code"], error["status"]) == ("budget_exceeded", 402)
    assert "Limit $0.3" in error["message"] and "estimated at $0.5" in error["message"]
    assert emulator.calls("video_submit") == []
    (row,) = ledger(config)
    assert (row["outcome"], row["cost_usd"], row["tool"]) == ("budget_exceeded", 0.0, "generate_video")
    assert row["job_id"] is not None  # the refused submission is tied to its (failed) job


async def test_video_jobs_and_their_charge_live_in_either_store(
    config: dict[str, Any], database_settings: dict[str, Any], emulator: Emulator
) -> None:
    """The job outlives the call that started it and a repeat with its client_request_id pays nothing more."""
    config["server"].update(database_settings)
    emulator.video_run_s = 1.0
    arguments = {"prompt": "a robot", "model": VIDEO_MODEL, "duration": 5, "client_request_id": "order-1"}
    async with in_memory_client(config) as client:
        started = (await client.call_tool("generate_video", {**arguments, "wait_s": 0.1})).structured_content
        done = await client.call_tool("get_video_status", {"job_id": started["job_id"], "wait_s": 15})
        repeat = (await client.call_tool("generate_video", {**arguments, "wait_s": 0})).structured_content
        report = (await client.call_tool("get_usage", {"group_by": "provider"})).structured_content
    assert started["status"] == "running" and done.structured_content["status"] == "completed"
    assert repeat["job_id"] == started["job_id"] and repeat["deduplicated"] is True
    assert len(emulator.calls("video_submit")) == 1
    assert (report["requests"], report["cost_usd"]) == (1, pytest.approx(0.5))
    assert list(report["breakdown"]) == ["arkroute"]
