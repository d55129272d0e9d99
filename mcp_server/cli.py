"""The `genroute` command: serve (stdio or HTTP), models, usage, check."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import anyio

from mcp_server import __version__, loop
from mcp_server.access import keys_cli

if TYPE_CHECKING:
    import socket

    from mcp_server.config import GatewayConfig

if TYPE_CHECKING:
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genroute", description="MCP gateway for AI generation.")
    parser.add_argument("--version", action="version", version=f"genroute {__version__}")
    _add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve MCP over stdio (default) or streamable HTTP")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument(
        "--no-auth", action="store_true", help="HTTP without bearer keys (refused unless --host is a loopback address)"
    )

    commands.add_parser("models", help="print the model catalog")
    from mcp_server.usage.command import add_usage_parser

    add_usage_parser(commands)
    commands.add_parser("check", help="validate the config and ask each provider what it can tell of its key, for free")
    commands.add_parser("reload", help="make the servers running on this config's data_dir re-read the config")
    keys_cli.add_parser(commands)
    _accept_global_options_after_commands(parser)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """--config and --log-level. After a command they have no default of their own: given there they override,
    left out they keep what was given before the command (or the global default)."""
    unset = argparse.SUPPRESS
    parser.add_argument(
        "--config",
        default=unset if after_command else None,
        help="TOML config file (default: $GENROUTE_CONFIG, else built-in defaults)",
    )
    parser.add_argument(
        "--log-level",
        default=unset if after_command else "INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    )


def _accept_global_options_after_commands(parser: argparse.ArgumentParser) -> None:
    """`genroute serve --config X` as well as `genroute --config X serve` (Claude Desktop `args` get written both
    ways): every command and sub-command (`keys create`) takes the global options too."""
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
                _add_global_options(command, after_command=True)
                _accept_global_options_after_commands(command)


def main(argv: Sequence[str] | None = None) -> int:
    with startup_without_collector():
        return _main(argv)


@contextmanager
def startup_without_collector() -> Iterator[None]:
    """The cyclic garbage collector is off while genroute starts, and on again once it has (or when `main` returns).

    Starting builds ~100,000 long-lived objects (the SDK, pydantic schemas, the catalog) and almost no garbage,
    yet the collector walks the growing heap again and again while it does: 100-150 ms of a ~1.5 s start on a
    2-core machine (docs/performance.md). `serve` turns it back on once its surface is built and frozen out of
    the collector's sight (over stdio: on the first request after `initialize`, see `DeferredSurface`).
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "serve":
        gc.enable()
    listener = None
    if args.command == "serve" and args.http:  # the port first, before anything heavy is loaded (listen.py)
        from mcp_server.listen import STARTUP_FAILURE, ListenError, bind_refusal, open_listener

        refusal = bind_refusal(args.host, no_auth=args.no_auth)
        if refusal:
            print(f"genroute: {refusal}", file=sys.stderr)
            return 2
        try:
            listener = open_listener(args.host, args.port)
        except ListenError as error:
            print(f"genroute: {error}", file=sys.stderr)
            return STARTUP_FAILURE
    from mcp_server.config import load_config
    from mcp_server.errors import ConfigError
    from mcp_server.providers import check_models

    try:
        config = load_config(args.config)
        check_models(config)
    except ConfigError as error:
        print(f"genroute: config error: {error}", file=sys.stderr)
        return 2

    from mcp_server.logs import configure_logging
    from mcp_server.providers.redact import redactor_for

    configure_logging(args.log_level, redactor_for(config))
    if args.command == "serve":
        return _serve(config, args, listener)
    if args.command == "models":
        return _models(config)
    if args.command == "keys":
        return anyio.run(keys_cli.run, config, args)
    if args.command == "reload":
        from mcp_server.reload import reload_command

        return reload_command(config)
    if args.command == "usage":
        from mcp_server.usage.command import usage_command

        return anyio.run(usage_command, config, args)
    from mcp_server.check import check_command

    return anyio.run(check_command, config)


def _serve(config: GatewayConfig, args: argparse.Namespace, listener: socket.socket | None) -> int:
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
    # What was built so far (SDK, schemas, catalog) lives as long as the server: out of the collector's sight,
    # a full collection no longer walks ~100,000 objects (a ~60 ms pause every few thousand calls, ~30 us a
    # call on average; see docs/performance.md). Startup, collector off, leaves ~2,600 garbage objects (~0.4 MB):
    # not worth a collect.
    gc.freeze()
    if listener is not None:
        gc.enable()  # the surface is built: startup is over (over stdio, `DeferredSurface` turns it on)
        from mcp_server.http_app import serve_http

        return serve_http(mcp, gateway, listener, args.log_level, no_auth=args.no_auth)
    if sys.stdin.isatty() or sys.stderr.isatty():  # a person ran it, not an MCP client: say what this is
        from mcp_server.banner import stdio_line

        print(stdio_line(gateway), file=sys.stderr, flush=True)
    # On uvloop when installed (see mcp_server/loop.py); the SDK's own `mcp.run("stdio")` uses plain asyncio.
    loop.run(mcp.run_stdio_async)
    return 0


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _models(config: GatewayConfig) -> int:
    from mcp_server.catalog import Catalog

    rows = []
    for card in Catalog.from_config(config).cards():
        p = card.pricing
        if card.kind == "chat":
            price = f"${p.input_usd_per_mtok or 0:g}/${p.output_usd_per_mtok or 0:g} per Mtok"
        elif card.kind == "image":
            price = f"${p.usd_per_image or 0:g}/image"
        else:
            price = f"${p.usd_per_second or 0:g}/s"
        rows.append(
            [
                card.id,
                card.kind,
                card.provider,
                card.upstream,
                str(card.context_window or "-"),
                price,
                ", ".join(card.aliases) or "-",
            ]
        )
    print(table(["ID", "KIND", "PROVIDER", "UPSTREAM", "CONTEXT", "PRICE", "ALIASES"], rows))
    return 0
