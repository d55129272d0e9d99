"""Section 4: many video jobs tracked at once by one genroute server process: CPU per status poll, memory.

Jobs are submitted with generate_video(wait_s=0) over streamable HTTP against an emulator whose videos
never finish during the run, so every job stays tracked (one poller each, backing off to the 5 s cap).
Once the pollers have settled, the server's CPU time over a window is divided by the status polls the
emulator answered in it; memory is the server's resident set before the jobs and with all of them tracked.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import loadgen, procs
from bench.cpu import cpu_seconds, rss_bytes
from emulator import Emulator

SETTLE_S = 12.0  # polls start at 1 s and back off by 1.5x to the 5 s cap: settled after about 11 s


async def _submit_all(url: str, jobs: int, clients: int) -> int:
    request = loadgen.tool_call_request(
        url, "generate_video", {"prompt": "a benchmark clip", "model": procs.VIDEO_MODEL, "duration": 5, "wait_s": 0}
    )
    remaining = jobs
    failures = 0

    async def worker() -> None:
        nonlocal remaining, failures
        connection = loadgen.Connection(url)
        try:
            while remaining > 0:
                remaining -= 1
                try:
                    result = await connection.call(request)
                except loadgen.CallFailed:
                    failures += 1
                    continue
                if result.get("structuredContent", {}).get("status") not in ("running", "submitting"):
                    failures += 1
        finally:
            await connection.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(clients))), timeout=600)
    return failures


async def run(workdir: Path, jobs: int, window_s: float = 20.0) -> dict[str, Any]:
    with Emulator(api_key=procs.KEY) as emulator:
        emulator.video_run_s = 24 * 3600.0  # never finishes while we measure
        config = procs.write_config(workdir, emulator.base_url)
        with procs.genroute_http(config) as genroute:
            rss_before = rss_bytes(genroute.pid)
            submit_started = time.perf_counter()
            failures = await _submit_all(genroute.url, jobs, clients=16)
            submit_s = time.perf_counter() - submit_started
            await asyncio.sleep(min(SETTLE_S, window_s))
            polls_before = len(emulator.calls("video_status"))
            cpu_before = cpu_seconds(genroute.pid)
            await asyncio.sleep(window_s)
            cpu_used = cpu_seconds(genroute.pid) - cpu_before
            polls = len(emulator.calls("video_status")) - polls_before
            rss_tracked = rss_bytes(genroute.pid)
    return {
        "jobs": jobs,
        "submit_failures": failures,
        "submit_s": round(submit_s, 2),
        "window_s": window_s,
        "polls_in_window": polls,
        "polls_per_s": round(polls / window_s, 1),
        "cpu_ms_per_poll": round(cpu_used / max(polls, 1) * 1000.0, 3),
        "cpu_share_of_one_core": round(cpu_used / window_s, 3),
        "rss_before_bytes": rss_before,
        "rss_tracked_bytes": rss_tracked,
        "rss_growth_bytes": rss_tracked - rss_before,
        "rss_growth_per_job_bytes": round((rss_tracked - rss_before) / max(jobs, 1)),
    }
