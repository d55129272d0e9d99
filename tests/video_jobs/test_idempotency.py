"""Paid generation never runs twice by accident, through the real generate_image and generate_video tools.

Every retry re-runs the same operation, so the one Idempotency-Key made per tool call is sent on every
attempt; a video submission whose answer was lost is not sent again, neither to the same provider nor to a
fallback, unless its provider declares `honours_idempotency_key`. The emulator's request log counts it all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.faults_support import backup, backup_emulator_server, error_of, output_of
from tests.support import EMU_KEY_ENV, in_memory_client, stdio_client, write_config
from tests.support_media import IMAGE_MODEL, VIDEO_MODEL, media_config

__all__ = ["backup", "backup_emulator_server"]  # fixtures
pytestmark = pytest.mark.anyio
VIDEO = {"prompt": "a cat on a skateboard", "model": VIDEO_MODEL, "wait_s": 15}


@pytest.fixture
def config(config_data: dict[str, Any], backup: Emulator, emulator: Emulator) -> dict[str, Any]:
    """The media models on arkroute; the video model falls back to the same model on the backup emulator."""
    emulator.video_run_s = backup.video_run_s = 0.2
    config = media_config(config_data)
    config["providers"]["backup"] = {
        "protocol": "openai",
        "base_url": backup.openai_url,
        "api_key_env": EMU_KEY_ENV,
        "timeout_s": 10,
    }
    config["models"]["kling-b"] = {"provider": "backup", "upstream": "kling-v2-master", "kind": "video"}
    config["models"][VIDEO_MODEL]["fallbacks"] = ["kling-b"]
    return config


async def video(config: dict[str, Any]) -> Any:
    async with in_memory_client(config) as client:
        return await client.call_tool("generate_video", VIDEO)


async def test_image_retries_send_one_idempotency_key(config: dict[str, Any], emulator: Emulator) -> None:
    emulator.fail_next("images", status=503)
    emulator.fail_next("images", drop_connection=True)  # an image whose answer was lost is sent again
    async with in_memory_client(config) as client:
        out = output_of(await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": IMAGE_MODEL}))
    keys = emulator.idempotency_keys
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0] and keys[0].startswith("genroute-")
    assert out["model"] == IMAGE_MODEL and "fallback_from" not in out and len(out["images"]) == 1


async def test_each_image_call_has_its_own_key(config: dict[str, Any], emulator: Emulator) -> None:
    async with in_memory_client(config) as client:
        for _ in range(2):
            output_of(await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": IMAGE_MODEL}))
    assert len(set(emulator.idempotency_keys)) == 2


async def test_a_lost_video_submission_is_not_sent_again(
    config: dict[str, Any], emulator: Emulator, backup: Emulator, tmp_path: Path
) -> None:
    """Through `genroute serve` over stdio: the connection drops after the request was sent."""
    emulator.fail_next("video_submit", drop_connection=True)
    async with stdio_client(write_config(tmp_path / "genroute.toml", config)) as client:
        error = error_of(await client.call_tool("generate_video", VIDEO))
    assert error["code"] == "submission_outcome_unknown"
    assert "may exist upstream" in error["message"] and "did not submit it again" in error["message"]
    assert len(emulator.calls("video_submit")) == 1
    assert backup.calls("video_submit") == []  # a fallback would start a second paid job


async def test_a_video_submission_that_timed_out_is_not_sent_again(
    config: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config["providers"]["arkroute"]["timeout_s"] = 0.3
    emulator.fail_next("video_submit", status=200, latency_ms=2000)  # accepted, but the answer comes too late
    error = error_of(await video(config))
    assert error["code"] == "submission_outcome_unknown" and "upstream_timeout" in error["message"]
    assert len(emulator.calls("video_submit")) == 1 and backup.calls("video_submit") == []


async def test_a_refused_video_submission_is_retried_with_the_same_key(
    config: dict[str, Any], emulator: Emulator
) -> None:
    """429 and 503 mean the job was not accepted: sending it again cannot pay twice."""
    emulator.fail_next("video_submit", status=429)
    emulator.fail_next("video_submit", status=503)
    out = output_of(await video(config))
    assert out["status"] == "completed" and out["provider"] == "arkroute"
    keys = emulator.video_idempotency_keys
    assert len(keys) == 3 and len(set(keys)) == 1 and emulator.video_submissions == 1


async def test_a_video_never_sent_may_go_to_the_fallback(
    config: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    """A refused connection means nothing reached the provider: the fallback may take the job."""
    config["providers"]["arkroute"]["base_url"] = "http://127.0.0.1:9/v1"
    out = output_of(await video(config))
    assert out["status"] == "completed" and (out["model"], out["provider"]) == ("kling-b", "backup")
    assert len(backup.calls("video_submit")) == 1


async def test_a_provider_honouring_keys_gets_the_lost_submission_again_with_the_same_key(
    config: dict[str, Any], emulator: Emulator, backup: Emulator
) -> None:
    config["providers"]["arkroute"]["honours_idempotency_key"] = True
    emulator.fail_next("video_submit", drop_connection=True)
    out = output_of(await video(config))
    assert out["status"] == "completed" and out["provider"] == "arkroute"
    keys = emulator.video_idempotency_keys
    assert len(keys) == 2 and len(set(keys)) == 1 and backup.calls("video_submit") == []
