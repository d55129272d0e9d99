"""Preview encoding cost: time and inline size for 4096x4096 and 1024x1024 upstream PNGs, n = 1 and 4.

Uses the emulator's generated PNGs (gradients plus noise bands, real Pillow PNGs) and genroute's own
`make_preview` with the default budget (200 KB of base64, 1024 px); then whole generate_image calls
through the in-memory client against the emulator (download, save, preview, result).
Run: python -m bench.media_previews
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
from mcp import Client

from emulator import Emulator
from emulator.configs import EMU_KEY_ENV, IMAGE_MODEL, base_config, media_config
from emulator.media import png_bytes
from mcp_server.config import MediaConfig, parse_config
from mcp_server.gateway import Gateway
from mcp_server.media.previews import make_preview
from mcp_server.server import build_server

REPEAT = 5


def measure(label: str, images: list[bytes], config: MediaConfig) -> None:
    timings: list[float] = []
    sizes: list[int] = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        # as the tool does it: worker threads, one per CPU at most (4 at most)
        with ThreadPoolExecutor(max_workers=max(1, min(len(images), 4, os.cpu_count() or 1))) as pool:
            made = list(
                pool.map(lambda data: make_preview(data, config.preview_max_bytes, config.preview_max_side), images)
            )
        timings.append(time.perf_counter() - started)
        sizes = [len(p.data_b64) for p in made]
    shapes = ", ".join(f"{p.width}x{p.height} {p.mime_type}" for p in made[:1])
    print(
        f"{label}: upstream {sum(map(len, images)) / 1e6:.2f} MB PNG; previews {shapes}; "
        f"inline base64 total {sum(sizes) / 1e3:.0f} KB ({max(sizes) / 1e3:.0f} KB max per image); "
        f"encode time median {statistics.median(timings) * 1000:.0f} ms, min {min(timings) * 1000:.0f} ms "
        f"over {REPEAT} runs"
    )


async def tool_calls() -> None:
    os.environ[EMU_KEY_ENV] = "test-key"
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        config = media_config(base_config(emulator, Path(tmp)))
        async with Client(build_server(Gateway.from_config(parse_config(config)))) as client:  # in-process
            for size in ("1024x1024", "4096x4096"):
                arguments = {"prompt": "bench", "model": IMAGE_MODEL, "n": 4, "size": size}
                await client.call_tool("generate_image", arguments)  # warm: the emulator renders once per size
                timings = []
                for _ in range(3):
                    started = time.perf_counter()
                    result = await client.call_tool("generate_image", arguments)
                    timings.append(time.perf_counter() - started)
                whole = len(result.model_dump_json(by_alias=True))
                print(
                    f"generate_image n=4 {size}: whole tool result {whole / 1e3:.0f} KB; "
                    f"call time median {statistics.median(timings) * 1000:.0f} ms over 3 calls"
                )


def main() -> None:
    config = MediaConfig()
    big = png_bytes(4096, 4096)
    measure("1 x 4096x4096", [big], config)
    measure("4 x 4096x4096", [big] * 4, config)
    measure("4 x 1024x1024", [png_bytes(1024, 1024)] * 4, config)
    anyio.run(tool_calls)


if __name__ == "__main__":
    main()
