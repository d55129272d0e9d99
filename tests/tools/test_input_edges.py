"""Arguments at the edges (the calendar's ends, file names too long, too deep, looping or with NUL bytes) are
`invalid_argument` errors naming the argument, never `internal_error`, and errors about input_dir's files never
show the server's absolute paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from emulator import Emulator
from tests.faults_support import error_of
from tests.support import GatewayProcess, base_config, write_config
from tests.support_media import IMAGE_MODEL, media_config

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("input-edges")


@pytest.fixture(scope="module")
def gateway(emulator_server: Emulator, folder: Path) -> Iterator[GatewayProcess]:
    """One `genroute serve --http` with an input folder holding a link loop and a file that is no image."""
    inputs = folder / "inputs"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "sub" / "notes.png").write_text("not an image")
    os.symlink("loop", inputs / "loop")
    (folder / "outside.png").write_text("outside")
    config = media_config(base_config(emulator_server, folder))
    config["server"]["input_dir"] = str(inputs)
    with GatewayProcess(write_config(folder / "genroute.toml", config)) as running:
        yield running


def assert_clean_log(gateway: GatewayProcess, before: int) -> None:
    log = gateway.stderr()[before:]
    assert "Traceback" not in log and "unexpected error" not in log, log


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"end_date": "9999-12-31"}, "end_date"),  # the day after is past datetime's end (OverflowError)
        ({"end_date": "9999-12-31T23:00:00-05:00"}, "end_date"),  # in UTC, past the end
        ({"start_date": "0001-01-01T00:00:00+05:00"}, "start_date"),  # in UTC, before the start
        ({"start_date": "0001-01-01"}, "start_date"),
    ],
)
async def test_dates_beyond_the_calendar_are_invalid_arguments(
    gateway: GatewayProcess, emulator: Emulator, arguments: dict[str, str], param: str
) -> None:
    before = len(gateway.stderr())
    async with Client(gateway.mcp_url) as client:
        result = await client.call_tool("get_usage", arguments)
        latest = await client.call_tool("get_usage", {"start_date": "2020-01-01", "end_date": "9999-12-30"})
    error = error_of(result)
    assert error["code"] == "invalid_argument" and error["param"] == param
    assert "1970-01-01 and 9999-12-30" in error["message"]
    assert not latest.is_error, latest.content
    assert_clean_log(gateway, before)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("a" * 5000 + ".png", "not a usable file name"),
        ("a/" * 2500 + "x.png", "not a usable file name"),
        ("x" * 300 + ".png", "File name too long"),  # under the cap, over the file system's NAME_MAX
        ("a\x00b.png", "no NUL bytes"),
        ("loop/x.png", "could not be read from the input folder"),
        ("sub/missing.png", "no file 'sub/missing.png' in the input folder"),
        ("sub/./../sub/missing.png", "no file 'sub/missing.png' in the input folder"),
        ("sub/notes.png", "not a PNG, JPEG, WebP or GIF image"),
        ("../outside.png", "outside the input folder"),
        ("{folder}/outside.png", "outside the input folder"),
        ("{folder}/inputs/sub/missing.png", "no file 'sub/missing.png' in the input folder"),
    ],
)
async def test_reference_file_names_are_invalid_arguments_without_server_paths(
    gateway: GatewayProcess, emulator: Emulator, folder: Path, reference: str, expected: str
) -> None:
    before = len(gateway.stderr())
    arguments: dict[str, Any] = {"prompt": "p", "model": IMAGE_MODEL, "size": "256x256"}
    arguments["reference_image"] = reference.format(folder=folder)
    async with Client(gateway.mcp_url) as client:
        result = await client.call_tool("generate_image", arguments)
    error = error_of(result)
    assert error["code"] == "invalid_argument" and error["param"] == "reference_image"
    assert expected in error["message"], error
    assert str(folder) not in error["message"] and str(folder) not in result.content[0].text  # type: ignore[union-attr]
    assert emulator.calls("images") == []
    assert_clean_log(gateway, before)
