"""A video job whose process was killed (kill -9) is tracked again at once, not a lease later: by the restarted
process at start, and by a live process on the same host asked about it (get_video_status, jobs://)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from emulator import Emulator
from mcp_server.video_jobs.owner import is_gone, machine, process_holder_id
from tests.support import GatewayProcess, two_replicas, write_config
from tests.support_media import VIDEO_MODEL, media_config
from tests.video_jobs.test_video import _submit_then_kill, eventually, read_json

pytestmark = pytest.mark.anyio
LEASE_S = 60  # the killed process's lease: nothing in these tests may wait for it to run out
SOON_S = 10  # what "at once" has to mean here, polls, download and process start included
needs_proc = pytest.mark.skipif(machine() is None, reason="liveness is provable only with Linux's /proc")


@pytest.fixture
def config(config_data: dict[str, Any], database_settings: dict[str, Any]) -> dict[str, Any]:
    config = media_config(config_data)
    config["server"].update(database_settings)
    config["media"]["video_job_lease_s"] = LEASE_S
    return config


async def _kill_mid_job(gateway: GatewayProcess, emulator: Emulator) -> None:
    """Start `gateway`, have it submit a video job and SIGKILL it after its first status poll."""
    emulator.video_run_s = 1.0  # still running at the kill, done upstream soon after
    gateway.start()
    try:
        arguments = {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 60}
        await _submit_then_kill(gateway, arguments, lambda: len(emulator.calls("video_status")) >= 1)
    finally:
        gateway.stop()


@needs_proc
async def test_restart_after_kill_resumes_the_job_at_once(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "genroute.toml", config)
    await _kill_mid_job(GatewayProcess(path), emulator)
    with GatewayProcess(path) as second:
        started = time.monotonic()
        async with Client(second.mcp_url) as client:
            job = (await read_json(client, "jobs://recent"))["jobs"][0]
            status = await client.call_tool("get_video_status", {"job_id": job["id"], "wait_s": SOON_S})
        took = time.monotonic() - started
        log = second.stderr()
    assert not status.is_error, status.content
    assert status.structured_content["status"] == "completed", status.structured_content  # not "running"
    assert took < SOON_S
    assert "resumed tracking of 1 unfinished video job" in log
    assert len(emulator.calls("video_submit")) == 1 and len(emulator.calls("files")) == 1


@needs_proc
@pytest.mark.parametrize("asks", ["get_video_status", "jobs://"])
async def test_a_live_process_takes_over_a_killed_ones_job_when_asked(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path, asks: str
) -> None:
    """Two processes on one database: the survivor's sweep runs every LEASE_S / 3 = 20 s, so only the question
    itself can take the job over in time."""
    first, second = two_replicas(write_config(tmp_path / "genroute.toml", config))
    with second:
        await _kill_mid_job(first, emulator)
        started = time.monotonic()
        async with Client(second.mcp_url) as client:
            job_id = (await read_json(client, "jobs://recent"))["jobs"][0]["id"]
            if asks == "get_video_status":
                result = await client.call_tool("get_video_status", {"job_id": job_id, "wait_s": SOON_S})
                assert not result.is_error, result.content
                status = result.structured_content["status"]
            else:

                async def done() -> bool:
                    return (await read_json(client, f"jobs://{job_id}"))["status"] == "completed"

                await eventually(done, "the job read through jobs:// did not finish", timeout_s=SOON_S)
                status = "completed"
        took = time.monotonic() - started
    assert status == "completed" and took < SOON_S
    assert len(emulator.calls("video_submit")) == 1 and len(emulator.calls("files")) == 1


@needs_proc
def test_holder_liveness_is_proven_or_not_claimed() -> None:
    """A real process: alive while it runs, gone once killed; anything unprovable counts as alive."""
    code = "from mcp_server.video_jobs.owner import process_holder_id; import sys, time; print(process_holder_id());"
    child = subprocess.Popen(
        [sys.executable, "-c", code + " sys.stdout.flush(); time.sleep(60)"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        holder = child.stdout.readline().strip()
        assert not is_gone(holder)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert is_gone(holder)
    own = process_holder_id()
    host, pid, token, here, start = own.split(":")
    assert not is_gone(own)
    assert is_gone(f"{host}:{pid}:{token}:{here}:{int(start) + 1}")  # this pid, another start: the pid was reused
    dead = holder.split(":")
    assert not is_gone(":".join([*dead[:3], "0123456789abcdef", dead[4]]))  # another host or container
    assert not is_gone(":".join(dead[:3]))  # an id from before liveness was recorded
    assert not is_gone("not an id")
