"""Section 3: a 4096x4096 PNG from upstream, as b64_json, turned by generate_image into a preview and a saved file.

Measured in the genroute server process (streamable HTTP): wall time of the call, and the growth of its
resident set from just before the call to the peak during it (VmHWM, reset before each call through
/proc/PID/clear_refs). The growth is set against the decoded image (width x height x 3 bytes, what any
decoder must hold) and, for reference, against the PNG's own bytes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mcp import Client

from bench import procs
from bench.cpu import peak_rss_bytes, reset_peak, rss_bytes
from bench.stats import median
from emulator import Emulator

SIZE = "4096x4096"


async def run(workdir: Path, runs: int, size: str = SIZE) -> dict[str, Any]:
    with Emulator(api_key=procs.KEY) as emulator:
        config = procs.write_config(workdir, emulator.base_url)
        with procs.genroute_http(config) as genroute:
            async with Client(genroute.url, read_timeout_seconds=300) as client:

                async def generate(size: str) -> dict[str, Any]:
                    arguments = {"prompt": "a benchmark landscape", "model": procs.IMAGE_MODEL, "size": size}
                    result = await client.call_tool("generate_image", arguments)
                    if result.is_error or result.structured_content is None:
                        raise RuntimeError(f"generate_image failed: {result.content}")
                    return result.structured_content

                await generate("1024x1024")  # warm: Pillow imported, threads started
                if size != "1024x1024":
                    await generate(size)  # warm: the emulator renders its large PNG once and caches it
                walls: list[float] = []
                growths: list[int] = []
                image: dict[str, Any] = {}
                for _ in range(runs):
                    before = rss_bytes(genroute.pid)
                    if not reset_peak(genroute.pid):
                        raise RuntimeError("cannot reset the peak RSS (/proc/PID/clear_refs)")
                    started = time.perf_counter()
                    out = await generate(size)
                    walls.append((time.perf_counter() - started) * 1000.0)
                    growths.append(max(peak_rss_bytes(genroute.pid) - before, 0))
                    image = out["images"][0]
    raster = image["width"] * image["height"] * 3
    growth = max(growths)  # the worst run: freed memory kept by the allocator can hide a later run's peak
    return {
        "size": size,
        "runs": runs,
        "wall_ms": round(median(walls), 1),
        "png_bytes": image["bytes"],
        "image_bytes": raster,
        "peak_growth_bytes": growth,
        "median_peak_growth_bytes": int(median(growths)),
        "peak_growth_over_image_bytes": round(growth / raster, 3),
        "peak_growth_over_png_bytes": round(growth / image["bytes"], 2),
        "round_peak_growth_bytes": growths,
    }
