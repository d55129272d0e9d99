"""The floor for the image path: a bare `mcp` SDK server whose one tool generates an image upstream, saves the
file and returns the whole image inline, as simple image servers do.

No previews, links, validation or accounting: one pooled httpx2 call for `b64_json`, the file written to `--out`,
and the PNG handed back through the SDK's own `Image` helper (base64 again, the full size: 2-3 MB a 1024 px
photo, over the 1 MB a tool result may hold in Claude's clients). genroute's image path is measured against it.

    python -m bench.bare_image_server --upstream http://127.0.0.1:PORT/v1 --out DIR [--http --port N]

Over HTTP it prints `READY http://127.0.0.1:PORT/mcp` once it accepts connections.
"""

from __future__ import annotations

import argparse
import base64
import uuid
from pathlib import Path

import anyio
import anyio.to_thread
import httpx2
from mcp.server.mcpserver import Image, MCPServer

from bench.bare_server import bare_server, serve_http


def build(upstream: str, model: str, out: Path) -> MCPServer[httpx2.AsyncClient]:
    mcp, client = bare_server("bare-image", upstream)
    out.mkdir(parents=True, exist_ok=True)

    @mcp.tool()
    async def generate_image(prompt: str, size: str = "1024x1024") -> Image:
        """Generate one image, save it, and return it inline."""
        body = {"model": model, "prompt": prompt, "size": size, "response_format": "b64_json"}
        response = await client.post("/images/generations", json=body)
        response.raise_for_status()
        data = base64.b64decode(response.json()["data"][0]["b64_json"])
        await anyio.to_thread.run_sync((out / f"{uuid.uuid4().hex}.png").write_bytes, data)
        return Image(data=data, format="png")

    return mcp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_image_server", description=__doc__)
    parser.add_argument("--upstream", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:9/v1")
    parser.add_argument("--model", default="gpt-image-2")
    parser.add_argument("--out", type=Path, required=True, help="folder the generated files are written to")
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    mcp = build(args.upstream, args.model, args.out)
    if args.http:
        serve_http(mcp, args.host, args.port, use_uvloop=False)
    else:
        anyio.run(mcp.run_stdio_async)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
