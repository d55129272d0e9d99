"""What genroute takes from the `mcp` SDK's private parts (mcp_server/sdk_internals.py) is still there.

When an SDK upgrade moves one of them, `test_the_sdk_still_has_what_genroute_relies_on` fails with the attribute's
name: the per-key session cap, the argument errors, the flat schemas or the media templates would otherwise stop
working, some of them silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from mcp_server.access.sessions import cap_sessions_per_key
from mcp_server.config import parse_config
from mcp_server.gateway import Gateway
from mcp_server.http_app import build_http_app
from mcp_server.sdk_internals import SdkChanged, verify
from mcp_server.server import build_server
from tests.support_media import media_config

ROOT = Path(__file__).resolve().parents[1]


def served(config_data: dict[str, Any]) -> MCPServer[Any]:
    """genroute's own server, tools, templates and HTTP app built, as `genroute serve --http` builds them."""
    gateway = Gateway.from_config(parse_config(media_config(config_data)))
    mcp = build_server(gateway)
    build_http_app(mcp, gateway, "127.0.0.1", 8000)
    return mcp


def test_the_sdk_still_has_what_genroute_relies_on(config_data: dict[str, Any]) -> None:
    verify(served(config_data))


@pytest.mark.parametrize(
    ("owner", "attribute", "named"),
    [
        (lambda mcp: mcp, "_tool_manager", "MCPServer._tool_manager"),
        (lambda mcp: mcp, "_lowlevel_server", "MCPServer._lowlevel_server"),
        (lambda mcp: mcp._resource_manager, "_templates", "ResourceManager._templates"),
        (lambda mcp: mcp.session_manager, "_session_owners", "StreamableHTTPSessionManager._session_owners"),
    ],
)
def test_a_missing_attribute_is_named(config_data: dict[str, Any], owner: Any, attribute: str, named: str) -> None:
    """An SDK without one of them (simulated on a real server by removing it) fails the check with its name."""
    mcp = served(config_data)
    delattr(owner(mcp), attribute)
    with pytest.raises(SdkChanged, match=re.escape(named) + " is gone; genroute uses it to"):
        verify(mcp)


def test_a_feature_that_needs_a_missing_attribute_says_which(config_data: dict[str, Any]) -> None:
    manager = served(config_data).session_manager
    del manager._session_owners
    with pytest.raises(SdkChanged, match=r"_session_owners is gone; genroute uses it to cap sessions per key"):
        cap_sessions_per_key(manager, 3)


def test_only_sdk_internals_reaches_into_the_sdk() -> None:
    """No other module touches a private attribute of an SDK object (the names sdk_internals.py uses)."""
    private = re.compile(r"\._(tool_manager|lowlevel_server|resource_manager|templates|admit_session|session_owners)\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "mcp_server").rglob("*.py"))
        if path.name != "sdk_internals.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line) or "get_tool_input_schema =" in line
    ]
    assert offenders == []
