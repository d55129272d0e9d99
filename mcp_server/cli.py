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
from mcp_server.config import GatewayConfig, ProviderConfig, load_config
from mcp_server.errors import ConfigError

if TYPE_CHECKING:
    from mcp_server.gateway import Gateway
    from mcp_server.providers.base import ProviderAdapter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genroute", description="MCP gateway for AI generation.")
    parser.add_argument("--version", action="version", version=f"genroute {__version__}")
    parser.add_argument("--config", help="TOML config file (default: $GENROUTE_CONFIG, else built-in defaults)")
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    )
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
    commands.add_parser("check", help="validate the config and ask every provider whether it answers")
    keys_cli.add_parser(commands)
    return parser


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
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"genroute: config error: {error}", file=sys.stderr)
        return 2

    from mcp_server.logs import configure_logging
    from mcp_server.providers.redact import redactor_for

    configure_logging(args.log_level, redactor_for(config))
    if args.command == "serve":
        return _serve(config, args)
    if args.command == "models":
        return _models(config)
    if args.command == "keys":
        return anyio.run(keys_cli.run, config, args)
    if args.command == "usage":
        from mcp_server.usage.command import usage_command

        return anyio.run(usage_command, config, args)
    return anyio.run(_check, config)


def _serve(config: GatewayConfig, args: argparse.Namespace) -> int:
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
    # Over HTTP both are done before the port opens.
    mcp = build_server(gateway, defer_surface=not args.http, after_surface=prepare_tls_context)
    # What was built so far (SDK, schemas, catalog) lives as long as the server: out of the collector's sight,
    # a full collection no longer walks ~100,000 objects (a ~60 ms pause every few thousand calls, ~30 us a
    # call on average; see docs/performance.md). Startup, collector off, leaves ~2,600 garbage objects (~0.4 MB):
    # not worth a collect.
    gc.freeze()
    if args.http:
        gc.enable()  # the surface is built: startup is over (over stdio, `DeferredSurface` turns it on)
        from mcp_server.http_app import bind_refusal, serve_http

        refusal = bind_refusal(args.host, no_auth=args.no_auth)
        if refusal:
            print(f"genroute: {refusal}", file=sys.stderr)
            return 2
        return serve_http(mcp, gateway, args.host, args.port, args.log_level, no_auth=args.no_auth)
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


async def _check(config: GatewayConfig) -> int:
    from mcp_server.gateway import Gateway

    print(f"config: ok ({config.source})")
    gateway = Gateway.from_config(config)
    health = _health_lines(gateway)
    failures = 0
    try:
        for name, adapter in gateway.router.adapters.items():
            line, ok = await _probe(name, adapter, config.providers.get(name))
            print(line)
            failures += not ok
            for health_line in health.get(name, []):
                print(health_line)
    finally:
        await gateway.aclose()
    if not health:
        print(f"health: no running genroute server has recorded provider calls ({gateway.health_dir})")
    return 1 if failures else 0


async def _probe(name: str, adapter: ProviderAdapter, provider: ProviderConfig | None) -> tuple[str, bool]:
    """Ask one provider for its model list: the cheapest call that proves URL and key work."""
    from mcp_server.errors import GatewayError

    if provider and provider.api_key_env and provider.api_key() is None:
        return f"{name}: missing key: environment variable {provider.api_key_env} is not set", False
    try:
        with anyio.fail_after(30):
            models = await adapter.list_models()
    except TimeoutError:
        return f"{name}: unreachable: no answer within 30 s", False
    except GatewayError as error:
        verdict = "bad key" if error.status in (401, 403) else "unreachable" if error.status in (502, 504) else "error"
        return f"{name}: {verdict}: {error.message}", False
    return (f"{name}: ok ({len(models)} models listed)" if models else f"{name}: ok"), True


def _health_lines(gateway: Gateway) -> dict[str, list[str]]:
    """Each provider's health as the running servers see it (their reports in data_dir), one line each."""
    from datetime import UTC, datetime

    from mcp_server.reliability.health_file import read_reports

    lines: dict[str, list[str]] = {}
    now = datetime.now(UTC)
    for report in read_reports(gateway.health_dir):
        age = max((now - report.written_at).total_seconds(), 0.0)
        for item in report.providers:
            text = f"  health: {item.aged(age, now).summary()} [server pid {report.pid}, as of {age:.0f} s ago]"
            lines.setdefault(item.provider, []).append(text)
    return lines
