"""What the cold-start work must keep: the deferred surface lists what the eager one does, and the garbage
collector, off while genroute starts, is on again once it has (else cycles would never be freed)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server.cli import main
from mcp_server.config import parse_config
from mcp_server.gateway import Gateway
from mcp_server.server import build_server


@pytest.fixture
def collector_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


async def _listings(client: Client) -> dict[str, Any]:
    return {
        "tools": (await client.list_tools()).model_dump(mode="json"),
        "resources": (await client.list_resources()).model_dump(mode="json"),
        "templates": (await client.list_resource_templates()).model_dump(mode="json"),
    }


@pytest.mark.anyio
async def test_deferred_surface_lists_the_same_and_turns_the_collector_back_on(
    config_data: dict[str, Any], collector_restored: None
) -> None:
    async with Client(build_server(Gateway.from_config(parse_config(config_data)))) as client:
        eager = await _listings(client)
    gc.disable()  # as `genroute serve` leaves it until its surface is built
    async with Client(build_server(Gateway.from_config(parse_config(config_data)), defer_surface=True)) as client:
        deferred = await _listings(client)
        assert gc.isenabled()
    assert deferred == eager
    assert len(eager["templates"]["resource_templates"]) >= 8  # models://, jobs:// and one media:// per file type
    media = {t["uri_template"]: t["mime_type"] for t in eager["templates"]["resource_templates"]}
    assert media["media://{media_id}.png"] == "image/png" and media["media://{media_id}.mov"] == "video/quicktime"


def test_commands_leave_the_collector_on(config_path: Path, tmp_path: Path, collector_restored: None) -> None:
    assert main(["--config", str(config_path), "models"]) == 0
    assert gc.isenabled()
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n", encoding="utf-8")
    assert main(["--config", str(broken), "serve"]) == 2  # a config error ends `serve` before it starts
    assert gc.isenabled()
