"""Where media files go and who can read them: names, output_dir safety, media:// and GET /media/{id}."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from emulator import Emulator
from emulator.media import png_bytes
from mcp_server.config import load_config
from tests.support import http_gateway, in_memory_client, write_config
from tests.support_media import IMAGE_MODEL, file_bytes, media_config, media_files

pytestmark = pytest.mark.anyio
NAME = re.compile(r"^\d{8}-\d{6}-nano-[0-9a-f]{12}\.png$")


@pytest.fixture
def config(config_data: dict[str, Any]) -> dict[str, Any]:
    return media_config(config_data)


def make_dir(path: str) -> Path:
    Path(path).mkdir(parents=True)
    return Path(path)


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


async def test_prompt_never_becomes_a_path(config: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    before = all_files(tmp_path)
    async with in_memory_client(config) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "../../../../etc/passwd", "model": IMAGE_MODEL, "size": "256x256"}
        )
    assert not result.is_error, result.content
    image = result.structured_content["images"][0]
    output_dir = Path(config["server"]["output_dir"])
    assert NAME.match(image["id"]) and image["path"] == str(output_dir / image["id"])
    new = all_files(tmp_path) - before
    written = {p for p in new if p.parent == output_dir}
    assert len(written) == 1 and next(iter(written)).name == image["id"]
    assert all(p.is_relative_to(tmp_path / "data") for p in new - written)  # the rest is the store
    assert file_bytes("/etc/passwd") != png_bytes(256, 256)


async def test_symlinked_output_dir_is_resolved(config: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    real = tmp_path / "real-media"
    real.mkdir()
    link = tmp_path / "media-link"
    link.symlink_to(real, target_is_directory=True)
    config["server"]["output_dir"] = str(link)
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_image", {"prompt": "p", "model": IMAGE_MODEL, "size": "256x256"})
        image = result.structured_content["images"][0]
        read = await client.read_resource(image["uri"])
    assert Path(image["path"]).parent == real  # the path reported is the real one, symlinks resolved
    assert file_bytes(real / image["id"]) == png_bytes(256, 256)
    assert base64.b64decode(read.contents[0].blob) == png_bytes(256, 256)


async def test_planted_symlinks_and_odd_ids_are_not_served(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    output_dir = make_dir(config["server"]["output_dir"])
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(8, 8))
    planted = "20250101-000000-nano-0123456789ab.png"  # a well-formed id, but a link to a file outside
    (output_dir / planted).symlink_to(secret)
    (output_dir / "notes.png").write_bytes(png_bytes(8, 8))  # not one of genroute's names
    async with in_memory_client(config) as client:
        for uri in (
            f"media://{planted}",
            "media://notes.png",
            "media://..%2Fsecret.png",
            "media://a%2F..%2F..%2Fx.png",
        ):
            with pytest.raises(MCPError):
                await client.read_resource(uri)


async def test_unwritable_output_dir_is_a_clear_error(
    config: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config["server"]["output_dir"] = str(blocker / "media")
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_image", {"prompt": "p", "model": IMAGE_MODEL, "size": "256x256"})
    assert result.is_error
    error = result.structured_content["error"]
    assert error["code"] == "output_dir_unwritable"
    assert str(blocker / "media") in error["message"] and "output_dir" in error["message"]


def test_relative_folders_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Desktop clients start servers with cwd `/`: a relative output_dir must not land there."""
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write_config(
        folder / "genroute.toml", {"server": {"data_dir": "state", "output_dir": "out", "input_dir": "../in"}}
    )
    monkeypatch.chdir("/")
    server = load_config(path).server
    assert server.resolved_data_dir() == folder / "state"
    assert server.resolved_output_dir() == folder / "out"
    assert server.input_dir == folder / "../in"


async def test_media_is_served_over_http(config: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    output_dir = make_dir(config["server"]["output_dir"])
    planted = "20250101-000000-nano-0123456789ab.png"
    (output_dir / planted).symlink_to(tmp_path / "genroute.toml")
    path = write_config(tmp_path / "genroute.toml", config)
    with http_gateway(path) as gateway:
        async with Client(gateway.mcp_url) as client:
            result = await client.call_tool("generate_image", {"prompt": "h", "model": IMAGE_MODEL, "size": "256x256"})
        assert not result.is_error, result.content
        image = result.structured_content["images"][0]
        async with httpx2.AsyncClient(base_url=gateway.url, timeout=10) as http:
            served = await http.get(f"/media/{image['id']}")
            unknown = await http.get("/media/20250101-000000-nano-ffffffffffff.png")
            linked = await http.get(f"/media/{planted}")
            traversal = await http.get("/media/..%2Fgenroute.toml")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png" and served.headers["x-content-type-options"] == "nosniff"
    assert served.content == png_bytes(256, 256) == file_bytes(image["path"])
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "media_not_found"
    assert linked.status_code == 404 and traversal.status_code == 404
    assert [p.name for p in media_files(config)] == sorted([image["id"], planted])
    assert (output_dir / planted).readlink() == tmp_path / "genroute.toml"  # left alone, not followed
