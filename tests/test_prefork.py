"""The suite's fork server (tests/prefork.py) stands in for the `genroute` script faithfully: same output and exit
code, signals reach the run, and a run whose requester is gone does not outlive it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.prefork_client import ForkServer
from tests.support import child_env, genroute_command, write_config


@pytest.fixture
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.stop()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_launched_run_prints_and_exits_as_the_script_does(forks: ForkServer, tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.toml", {"server": {"no_such_setting": 1}})
    for args in (["--version"], ["--config", str(bad), "check"]):
        script = subprocess.run([genroute_command(), *args], capture_output=True, text=True, env=child_env())
        command, launch_args = forks.command(args)
        launched = subprocess.run([command, *launch_args], capture_output=True, text=True, env=child_env())
        assert (launched.returncode, launched.stdout, launched.stderr) == (
            script.returncode,
            script.stdout,
            script.stderr,
        ), args
    assert script.returncode != 0  # the bad config was refused, by both


def test_signals_reach_the_run_and_a_gone_requester_takes_its_run_with_it(forks: ForkServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "genroute.toml", {"server": {"data_dir": str(tmp_path / "data")}})
    args = ["--config", str(config), "serve", "--http", "--port", "0"]
    with (tmp_path / "a.log").open("wb") as log:
        run = forks.spawn(args, env=child_env(), stdout=subprocess.DEVNULL, stderr=log)
    run.terminate()
    assert run.wait(timeout=30) in (0, -signal.SIGTERM)
    with (tmp_path / "b.log").open("wb") as log:
        orphan = forks.spawn(args, env=child_env(), stdout=subprocess.DEVNULL, stderr=log)
    assert alive(orphan.pid)
    orphan.conn.close()  # the requester is gone (a killed test process, a SIGKILLed launcher)
    deadline = time.monotonic() + 10
    while alive(orphan.pid):
        assert time.monotonic() < deadline, "the run outlived its requester"
        time.sleep(0.05)
