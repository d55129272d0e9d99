"""The floor: a bare `mcp` SDK server whose one tool forwards a chat call upstream and returns the text.

No config, routing, validation, accounting or result shaping: only what any Python MCP gateway must do
(the SDK's own request handling plus one pooled httpx2 call). genroute's cost is measured against this.

    python -m bench.bare_server --upstream http://127.0.0.1:PORT/v1 [--http --port N]

Over HTTP it prints `READY http://127.0.0.1:PORT/mcp` once it accepts connections.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp.server.mcpserver import MCPServer

KEY_ENV = "BENCH_UPSTREAM_KEY"


def bare_server(name: str, upstream: str) -> tuple[MCPServer[httpx2.AsyncClient], httpx2.AsyncClient]:
    """An SDK server with one pooled upstream client (closed with the server) and a /healthz route."""
    client = httpx2.AsyncClient(
        base_url=upstream,
        headers={"Authorization": f"Bearer {os.environ.get(KEY_ENV, 'test-key')}"},
        timeout=httpx2.Timeout(120.0, connect=10.0),
        trust_env=False,
    )

    @asynccontextmanager
    async def lifespan(_: MCPServer[httpx2.AsyncClient]) -> AsyncIterator[httpx2.AsyncClient]:
        async with client:
            yield client

    mcp: MCPServer[httpx2.AsyncClient] = MCPServer(name, lifespan=lifespan, log_level="WARNING")

    @mcp.custom_route("/healthz", methods=["GET"])
    async def healthz(_request: object) -> object:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("ok")

    return mcp, client


def build(upstream: str, model: str) -> MCPServer[httpx2.AsyncClient]:
    mcp, client = bare_server("bare", upstream)

    @mcp.tool()
    async def chat(prompt: str) -> str:
        """Send one user message upstream and return the answer's text."""
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        response = await client.post("/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    return mcp


def serve_http(mcp: MCPServer[Any], host: str, port: int, use_uvloop: bool) -> None:
    """uvicorn with its defaults inside `anyio.run`, as `mcp.run('streamable-http')` does, on a pre-bound socket
    (for port 0). Like the SDK's, that loop is plain asyncio: uvicorn picks uvloop only in `uvicorn.run`."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(mcp.streamable_http_app(host=host), log_level="warning"))

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            for _ in range(3000):  # uvicorn has no started event: poll its flag, for 30 s at most
                if server.started:
                    break
                await anyio.sleep(0.01)
            print(f"READY http://{host}:{sock.getsockname()[1]}/mcp", flush=True)

    anyio.run(serve, backend_options={"use_uvloop": use_uvloop})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server", description=__doc__)
    parser.add_argument("--upstream", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:9/v1")
    parser.add_argument("--model", default="gpt-5.5")
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop, as genroute does, instead of the SDK's plain asyncio"
    )
    args = parser.parse_args(argv)
    mcp = build(args.upstream, args.model)
    if args.http:
        serve_http(mcp, args.host, args.port, args.uvloop)
    else:
        anyio.run(mcp.run_stdio_async, backend_options={"use_uvloop": args.uvloop})  # = mcp.run("stdio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
