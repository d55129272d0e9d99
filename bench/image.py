"""Section 7: the image path, one client, the same generated image four ways, in interleaved rounds.

(a) straight to the emulator with httpx2 (`b64_json`, decoded); (b) the bare SDK image forwarder in
bench/bare_image_server.py (saves the file, returns the full PNG inline); (c) genroute's generate_image with its
default output="preview" (file saved, a JPEG preview within the byte budget inline, a link); (d) the same with
output="link" (file saved, no image data inline). For 1024 and 2048 px images, on a photograph-like picture and a
detailed synthetic one (the emulator draws what the prompt names: emulator/media.py): p50, server CPU per
call and the result's bytes. The preview's own CPU is (c) minus (d): the same call without the preview.
"""

from __future__ import annotations

import base64
import contextlib
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client

from bench import procs
from bench.overhead import Call, Target, direct_client, interleaved
from bench.report import describe

PROMPTS = {"photo": "a photo of a harbour at dusk", "detailed": "a detailed engraving of a clockwork"}


def direct_image_call(client: httpx2.AsyncClient, prompt: str, size: str, sizes: dict[str, int]) -> Call:
    body = {"model": procs.IMAGE_MODEL, "prompt": prompt, "size": size, "response_format": "b64_json"}

    async def call() -> None:
        response = await client.post("/images/generations", json=body)
        response.raise_for_status()
        if not base64.b64decode(response.json()["data"][0]["b64_json"]):
            raise RuntimeError("direct image call: no image")
        sizes["direct"] = len(response.content)

    return call


def kept_call(client: Client, arguments: dict[str, Any], results: dict[str, Any], name: str) -> Call:
    """generate_image, its result kept (not serialised: that would be timed) to measure its size afterwards."""

    async def call() -> None:
        result = await client.call_tool("generate_image", arguments)
        if result.is_error:
            raise RuntimeError(f"generate_image via {name} failed: {str(result.content)[:300]}")
        results[name] = result

    return call


async def run(workdir: Path, sides: tuple[int, ...], rounds: int, block: int, warmup: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with procs.emulator(0.0) as emulator, contextlib.ExitStack() as stack:
        config = procs.write_config(workdir, emulator.url)
        managers = [procs.genroute_http(config), procs.bare_image_http(emulator.url, workdir / "bare-files")]
        genroute, bare = procs.start_all(stack, managers)
        try:
            async with AsyncExitStack() as clients:
                direct = await clients.enter_async_context(direct_client(emulator.url))
                bare_client = await clients.enter_async_context(Client(bare.url, read_timeout_seconds=120))
                genroute_client = await clients.enter_async_context(Client(genroute.url, read_timeout_seconds=120))
                ways = {"direct": direct, "bare": (bare_client, bare.pid), "genroute": (genroute_client, genroute.pid)}
                for side in sides:
                    for kind, prompt in PROMPTS.items():
                        try:
                            out[f"{kind}_{side}"] = await _one(ways, prompt, f"{side}x{side}", rounds, block, warmup)
                        except Exception as error:  # keep the other images' figures
                            out[f"{kind}_{side}"] = {"error": describe(error)}
        except Exception as error:  # a client's session failed: what was measured before stays
            out["error"] = describe(error)
    return out


async def _one(ways: dict[str, Any], prompt: str, size: str, rounds: int, block: int, warmup: int) -> dict[str, Any]:
    (bare_client, bare_pid), (genroute_client, genroute_pid) = ways["bare"], ways["genroute"]
    wire: dict[str, int] = {}
    results: dict[str, Any] = {}
    ours = {"prompt": prompt, "model": procs.IMAGE_MODEL, "size": size}
    calls = {
        "bare": (bare_client, {"prompt": prompt, "size": size}, bare_pid),
        "preview": (genroute_client, ours, genroute_pid),
        "link": (genroute_client, {**ours, "output": "link"}, genroute_pid),
    }
    targets = {"direct": Target(direct_image_call(ways["direct"], prompt, size, wire))}
    for name, (client, arguments, pid) in calls.items():
        targets[name] = Target(kept_call(client, arguments, results, name), pid)
    figures = await interleaved(targets, rounds, block, warmup)
    for name, result in results.items():  # the result's size as JSON, as the client received it
        figures[name]["result_bytes"] = len(result.model_dump_json(by_alias=True, exclude_none=True))
    figures["direct"]["result_bytes"] = wire["direct"]
    return _compare(figures)


def _compare(figures: dict[str, Any]) -> dict[str, Any]:
    """The ratios the targets are on: (c) against (d) and (b), in time and in server CPU."""
    preview, link, bare = figures["preview"], figures["link"], figures["bare"]
    figures["preview_over_link"] = round(preview["p50_ms"] / link["p50_ms"], 3)
    figures["preview_over_bare"] = round(preview["p50_ms"] / bare["p50_ms"], 3)
    figures["preview_cpu_ms"] = round((preview["server_cpu_us_per_call"] - link["server_cpu_us_per_call"]) / 1000, 2)
    return figures
