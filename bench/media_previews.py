"""Preview encoding cost: time and inline size for one 4096x4096 PNG and for n = 4 1024x1024 images.

Uses the emulator's generated PNGs (gradients plus noise bands, real Pillow PNGs) and genroute's own
`make_preview` with the default budget (200 KB of base64, 1024 px). Run: python -m bench.media_previews
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from mcp_server.config import MediaConfig
from mcp_server.media.previews import make_preview
from tests.emulator_media import png_bytes

REPEAT = 5


def measure(label: str, images: list[bytes], config: MediaConfig) -> None:
    timings: list[float] = []
    sizes: list[int] = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        # as the tool does it: one worker thread per image
        with ThreadPoolExecutor(max_workers=len(images)) as pool:
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


def main() -> None:
    config = MediaConfig()
    big = png_bytes(4096, 4096)
    measure("1 x 4096x4096", [big], config)
    measure("4 x 4096x4096", [big] * 4, config)
    measure("4 x 1024x1024", [png_bytes(1024, 1024)] * 4, config)


if __name__ == "__main__":
    main()
