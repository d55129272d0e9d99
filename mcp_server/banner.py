"""What `genroute serve` tells the person who started it, on stderr: where to connect, who may, what is served
and where its state lives. Over stdio only when started from a terminal: there stdout is the protocol channel,
and an MCP client that launches genroute has no use for the line."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from mcp_server import __version__
from mcp_server.config import KINDS, GatewayConfig
from mcp_server.gateway import Gateway
from mcp_server.text import plural


def mcp_url(host: str, port: int) -> str:
    """The URL a client uses; for a wildcard bind, this machine's name (the bind address is not connectable)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/mcp"


def models_line(gateway: Gateway) -> str:
    counts = {kind: len(gateway.catalog.cards(kind)) for kind in KINDS}
    served = [plural(count, f"{kind} model") for kind, count in counts.items() if count]
    return ", ".join(served) or "no models (add providers and models to a config file: see the README)"


def data_line(config: GatewayConfig) -> str:
    data = f"data in {config.server.resolved_data_dir()}"
    url = config.server.database_url
    if url:
        parts = urlsplit(url)  # host, port and database only: never the password
        where = f"{parts.hostname or 'localhost'}{f':{parts.port}' if parts.port else ''}{parts.path}"
        return f"{data}; ledger, jobs and keys in PostgreSQL at {where}"
    return data


async def http_banner(gateway: Gateway, host: str, port: int, *, no_auth: bool) -> str:
    url = mcp_url(host, port)
    if no_auth:
        auth = "none (--no-auth: clients on this machine only)"
    else:
        active = len(await gateway.store.list_keys(include_revoked=False))
        if active:
            auth = f"bearer keys ({plural(active, 'active key')})"
        else:
            auth = "bearer keys, none active yet: every request gets 401 until `genroute keys create NAME`"
        if gateway.config.http.oauth is not None:
            auth += f", or OAuth tokens from {gateway.config.http.oauth.issuer_url}"
    where = "listening on every interface; " if host in ("0.0.0.0", "::") else ""
    return "\n".join(
        [
            f"genroute {__version__}: MCP over streamable HTTP at {url} ({where}Ctrl-C stops)",
            f"  auth: {auth}",
            f"  models: {models_line(gateway)}",
            f"  {data_line(gateway.config)}",
            f"  try it: npx @modelcontextprotocol/inspector, transport Streamable HTTP, URL {url}",
        ]
    )


def stdio_line(gateway: Gateway) -> str:
    return (
        f"genroute {__version__}: MCP over stdio, waiting for a client on stdin ({models_line(gateway)}; "
        f"{data_line(gateway.config)}). MCP clients such as Claude Desktop start this command themselves; to "
        "connect by URL instead, run `genroute serve --http --no-auth`. Ctrl-C stops."
    )
