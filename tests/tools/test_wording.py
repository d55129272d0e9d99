"""Text that reads right: "1 image" and "1 call", "an image model", round progress values, and a log line that
names what failed instead of "None"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from emulator import Emulator
from tests.faults_support import error_of, output_of
from tests.support import GatewayProcess, stdio_client, write_config
from tests.support_media import IMAGE_MODEL, VIDEO_MODEL, media_config

pytestmark = pytest.mark.anyio


async def test_one_of_a_kind_reads_in_the_singular(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "genroute.toml", media_config(config_data))
    emulator.fail_next("chat", status=401, body={"error": {"message": "Invalid API key"}})  # no code, no type
    with GatewayProcess(path) as gateway:
        async with Client(gateway.mcp_url) as client:
            output_of(await client.call_tool("generate_image", {"prompt": "a fox", "model": IMAGE_MODEL, "n": 1}))
            wrong_kind = error_of(await client.call_tool("chat_complete", {"prompt": "hi", "model": IMAGE_MODEL}))
            failed = error_of(await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.4"}))
            usage = await client.call_tool("get_usage", {})
    assert wrong_kind["message"].startswith(
        f"Model '{IMAGE_MODEL}' is an image model and cannot be used here, which needs a chat model."
    )
    assert failed["status"] == 401
    summary = usage.content[0].text.splitlines()[0]
    assert ": 2 calls (1 failed or refused), 0 tokens, 1 image, $0.02." in summary, summary
    log = gateway.stderr()
    assert "chat_complete failed: authentication_error (HTTP 401)" in log and "failed: None" not in log


async def test_video_progress_values_are_round(config_data: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    """Polls closer together than a tenth of a second step the value by 0.1 each: no 0.30000000000000004."""
    emulator.video_run_s = 0.5
    config = media_config(config_data, video_poll_initial_s=0.01, video_poll_max_s=0.01)
    values: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        values.append(progress)

    async with stdio_client(write_config(tmp_path / "genroute.toml", config)) as client:
        result = await client.call_tool(
            "generate_video", {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 15}, progress_callback=on_progress
        )
    assert output_of(result)["status"] == "completed"
    assert len(values) >= 10 and values == sorted(set(values))
    assert [value for value in values if value != round(value, 1)] == []
