"""`python -m bench.media_memory [MB]`: peak memory of storing and serving one large file through the s3 store.

Starts SeaweedFS on loopback (emulator/s3server.py). Storing: a fresh process saves MB megabytes through
MediaRegistry.save_stream (spooled to disk, then a multipart upload). Serving: `genroute serve --http` answers
GET /media/{id} by streaming from the bucket. Each figure is the process's peak RSS (VmHWM, reset through
/proc/<pid>/clear_refs after a warm-up) minus its RSS just before: what the file itself cost. Linux only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import tomli_w

from bench.procs import child_env, genroute_http
from emulator.s3server import SeaweedServer

LIMIT_MB = 32.0


def _kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak(pid: int | str) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0+)


STORE_SCRIPT = """
import anyio, json, os, sys
from mcp_server.config import parse_config
from mcp_server.media.registry import MediaRegistry
from mcp_server.media.stores.configured import build_media_store
from bench.media_memory import _kb, _reset_peak

config = parse_config(json.loads(sys.argv[1]))
size = int(sys.argv[2])
block = b"\\0" * (64 * 1024)

async def chunks(total):
    yield b"\\0\\0\\0\\x18ftypmp42" + b"\\0" * (64 * 1024 - 12)
    sent = 64 * 1024
    while sent < total:
        yield block
        sent += len(block)

async def main():
    media = MediaRegistry(build_media_store(config))
    await media.save_stream(chunks(24 * 1024 * 1024), "warmup", "mp4")  # clients and threads exist before the baseline
    _reset_peak("self")
    before = _kb("self", "VmRSS")
    item = await media.save_stream(chunks(size), "bench", "mp4")
    print(json.dumps({"id": item.id, "bytes": item.bytes, "peak_over_baseline_kb": _kb("self", "VmHWM") - before}))
    await media.aclose()

anyio.run(main)
"""


def main(megabytes: int = 200) -> int:
    size = megabytes * 1024 * 1024
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        seaweed = SeaweedServer(root / "seaweed").start()
        try:
            config = {"server": {"data_dir": str(root / "data"), "local_model": False},
                      "media": seaweed.settings(prefix="bench")}  # fmt: skip

            env = child_env(**SeaweedServer.env())
            stored = subprocess.run([sys.executable, "-c", STORE_SCRIPT, json.dumps(config), str(size)], env=env,
                                    capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
            saved = json.loads(stored.stdout.strip().splitlines()[-1])
            path = root / "genroute.toml"
            path.write_text(tomli_w.dumps(config), encoding="utf-8")
            with genroute_http(path, env=env) as proc:
                pid, base = proc.pid, proc.url.removesuffix("/mcp")
                httpx2.get(f"{base}/media/{saved['id']}", headers={"Range": "bytes=0-1048575"}, timeout=30)
                time.sleep(0.5)
                _reset_peak(pid)
                before = _kb(pid, "VmRSS")
                received = 0
                with httpx2.stream("GET", f"{base}/media/{saved['id']}", timeout=120) as answer:
                    for chunk in answer.iter_bytes():
                        received += len(chunk)
                served_kb = _kb(pid, "VmHWM") - before
        finally:
            seaweed.stop()
    stored_mb, served_mb = saved["peak_over_baseline_kb"] / 1024, served_kb / 1024
    print(f"file: {saved['bytes'] / 1048576:.0f} MB (served {received / 1048576:.0f} MB)")
    print(f"storing (save_stream -> spool -> multipart upload): peak RSS over baseline {stored_mb:.1f} MB")
    print(f"serving (GET /media/{{id}} streamed from the bucket): peak RSS over baseline {served_mb:.1f} MB")
    ok = received == size and stored_mb < LIMIT_MB and served_mb < LIMIT_MB
    print("ok" if ok else f"over the {LIMIT_MB:g} MB limit (or incomplete)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
