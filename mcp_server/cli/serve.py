"""`genroute serve`: MCP over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import anyio

from mcp_server import collector, loop
from mcp_server.stdio import serve_stdio

if TYPE_CHECKING:
    import socket

    from mcp_server.config import GatewayConfig


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="serve MCP over stdio (default) or streamable HTTP")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument(
        "--no-auth", action="store_true", help="HTTP without bearer keys (refused unless --host is a loopback address)"
    )


def run(config: GatewayConfig, args: argparse.Namespace, listener: socket.socket | None) -> int:
    from mcp_server.providers.http import prepare_tls_context

    if args.http:  # the CA store loads in a background thread while the SDK is imported
        prepare_tls_context()
    from mcp_server.gateway import Gateway
    from mcp_server.server import build_server

    if config.server.database_url:  # a database that is down: one clear line, not a startup traceback
        from mcp_server.store import probe_store

        problem = anyio.run(probe_store, config)
        if problem:
            print(f"genroute: {problem}", file=sys.stderr)
            return 2
    gateway = Gateway.from_config(config, metrics=args.http)  # GET /metrics is served over HTTP only
    # Over stdio the client waits for `initialize` at every launch (Claude Desktop starts the server each
    # time): the tools are built on its next request, and the CA store loads once that is answered (a thread
    # loading it slows the start by far more than its own CPU time on a busy machine: docs/performance.md).
    # Over HTTP both are done before the first connection is accepted.
    mcp = build_server(
        gateway,
        defer_surface=not args.http,
        after_surface=prepare_tls_context,
        reload_on_sighup=True,  # and `genroute reload` (reload.py)
        config_path=args.config,
    )
    if listener is not None:
        collector.serving()  # the surface is built: startup is over (over stdio, `DeferredSurface` says so)
        from mcp_server.http_app import serve_http

        return serve_http(mcp, gateway, listener, args.log_level, no_auth=args.no_auth)
    if sys.stdin.isatty() or sys.stderr.isatty():  # a person ran it, not an MCP client: say what this is
        from mcp_server.banner import stdio_line

        print(stdio_line(gateway), file=sys.stderr, flush=True)
    collector.freeze_built()  # the collector stays off until the first call (`serving` then freezes the rest)
    # On uvloop when installed (see mcp_server/loop.py), its pipes on the event loop (see mcp_server/stdio.py).
    loop.run(serve_stdio, mcp)
    return 0
