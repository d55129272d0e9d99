"""The `genroute` command: global options, the parser, and dispatch to one module per command.

serve.py (stdio or HTTP), models.py, usage.py, keys.py, media.py, check.py; table.py is their one table renderer.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

import anyio

from mcp_server import __version__
from mcp_server.cli import keys, media, models, serve, usage
from mcp_server.collector import startup_without_collector


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genroute", description="MCP gateway for AI generation.")
    parser.add_argument("--version", action="version", version=f"genroute {__version__}")
    _add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve.add_parser(commands)
    models.add_parser(commands)
    usage.add_parser(commands)
    # check.py imports the config module: its parser is here, so that `serve --http` binds before that loads
    commands.add_parser("check", help="validate the config and ask each provider what it can tell of its key, for free")
    commands.add_parser("reload", help="make the servers running on this config's data_dir re-read the config")
    keys.add_parser(commands)
    media.add_parser(commands)
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
        return serve.run(config, args, listener)
    if args.command == "models":
        return models.run(config)
    if args.command == "keys":
        return anyio.run(keys.run, config, args)
    if args.command == "usage":
        return anyio.run(usage.run, config, args)
    if args.command == "reload":
        from mcp_server.reload import reload_command

        return reload_command(config)
    if args.command == "media":
        return anyio.run(media.run, config, args)
    from mcp_server.cli.check import check_command

    return anyio.run(check_command, config)
