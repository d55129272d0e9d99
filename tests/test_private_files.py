"""What genroute writes is its owner's only (0700 folders, 0600 files), even started with umask 000: the data
folder, the database with its WAL and shared-memory files, the health report, media and video job inputs."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from emulator import Emulator
from mcp_server.private_files import private_dir, write_private
from tests.support import GatewayProcess, child_env, genroute_argv, write_config
from tests.support_media import IMAGE_MODEL, VIDEO_MODEL, media_config, png_b64

pytestmark = pytest.mark.anyio


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    """Every path under `root` (itself included) -> its permission bits."""
    return {str(path.relative_to(root.parent)): stat.S_IMODE(path.lstat().st_mode) for path in [root, *root.rglob("*")]}


def assert_owner_only(written: dict[str, int], root: Path) -> None:
    for name, mode in written.items():
        expected = 0o700 if (root.parent / name).is_dir() else 0o600
        assert mode == expected, f"{name} is {mode:o}, expected {expected:o}"


async def call_into(results: list[Any], client: Client, tool: str, arguments: dict[str, Any]) -> None:
    results.append(await client.call_tool(tool, arguments))


async def until_found(folder: Path, pattern: str) -> dict[str, int]:
    """The files matching `pattern` in `folder` (name -> mode) as soon as there is one; 10 s at most."""

    def look() -> dict[str, int]:
        return {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.glob(pattern)}

    for _ in range(500):
        if found := look():
            return found
        await anyio.sleep(0.02)
    raise AssertionError(f"nothing like {pattern} in {folder} within 10 s")


async def test_a_server_started_with_umask_000_writes_owner_only(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    config_data["server"]["data_dir"] = str(tmp_path / "state" / "deep" / "data")  # parents created too
    config_data["server"]["output_dir"] = str(tmp_path / "out" / "media")
    config_path = write_config(tmp_path / "genroute.toml", media_config(config_data))
    data = tmp_path / "state" / "deep" / "data"
    emulator.fail_next("video_submit", status=200, latency_ms=3000)  # the job's input file stays meanwhile
    with umask(0):
        gateway = GatewayProcess(config_path).start()  # the child inherits the umask
    try:
        async with Client(gateway.mcp_url) as client:
            image = await client.call_tool("generate_image", {"prompt": "p", "model": IMAGE_MODEL, "size": "256x256"})
            video = {"prompt": "p", "model": VIDEO_MODEL, "image": png_b64(), "wait_s": 0}
            jobs: list[Any] = []
            async with anyio.create_task_group() as group:  # the input file lives while the submission waits
                group.start_soon(lambda: call_into(jobs, client, "generate_video", video))
                inputs = await until_found(data / "job-inputs", "*.input")
            chat = await client.call_tool("chat_complete", {"prompt": "hi"})
        await until_found(data / "health", "*.json")
        written = modes(tmp_path / "state") | modes(tmp_path / "out")
    finally:
        gateway.stop()
    assert not image.is_error and not jobs[0].is_error and not chat.is_error
    names = set(written)
    for expected in ("genroute.db", "genroute.db-wal", "genroute.db-shm", "health", "job-inputs"):
        assert f"state/deep/data/{expected}" in names, names
    assert any(name.startswith("state/deep/data/health/") and name.endswith(".json") for name in names)
    assert any(name.startswith("out/media/") and name.endswith(".png") for name in names)
    assert_owner_only(written, tmp_path / "state")
    assert len(inputs) == 1 and set(inputs.values()) == {0o600}, inputs


def test_the_cli_makes_and_tightens_the_database_owner_only(config_data: dict[str, Any], tmp_path: Path) -> None:
    """`genroute keys create` on a data folder an older version left readable: the database becomes 0600."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "genroute.db").touch(mode=0o666)  # empty: SQLite makes a database of it
    os.chmod(data / "genroute.db", 0o666)
    config_path = write_config(tmp_path / "genroute.toml", config_data)
    done = subprocess.run(
        [*genroute_argv(), "--config", str(config_path), "keys", "create", "alice"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        umask=0,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((data / "genroute.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o755  # a folder that already existed keeps its owner's choice


def test_helpers_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    report = tmp_path / "a" / "b" / "report.json"
    with umask(0):
        private_dir(report.parent)
        report.write_text("{}")  # as an older version left it: 0666
        write_private(report, b'{"ok": true}')
    assert report.read_bytes() == b'{"ok": true}' and stat.S_IMODE(report.stat().st_mode) == 0o600
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "a", tmp_path / "a" / "b")} == {0o700}
    assert [p.name for p in report.parent.iterdir()] == ["report.json"]  # no temporary left behind
