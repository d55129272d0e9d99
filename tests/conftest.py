"""Shared fixtures: the provider emulator, config files, and genroute run as a real process (stdio or HTTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.support import EMU_KEY_ENV, GatewayProcess, base_config, write_config

__all__ = ["EMU_KEY_ENV", "GatewayProcess"]
pytest_plugins = ["tests.store_backends"]  # `backend` and `database_settings`: SQLite and PostgreSQL


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per core. Most of a test's time is spent waiting on the servers, browsers and
    databases it started (2 workers on 2 cores kept the cores ~60% busy: 210 s; 4 workers: 150 s)."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Emulator]:
    with Emulator(api_key="test-key") as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_server: Emulator) -> Iterator[Emulator]:
    """The session's emulator, reset to a clean state for each test."""
    emulator_server.reset()
    yield emulator_server
    emulator_server.reset()


@pytest.fixture
def config_data(emulator: Emulator, tmp_path: Path) -> dict[str, Any]:
    """A config dict pointing at the emulator; tests tweak it before writing it."""
    return base_config(emulator, tmp_path)


@pytest.fixture
def config_path(config_data: dict[str, Any], tmp_path: Path) -> Path:
    return write_config(tmp_path / "genroute.toml", config_data)


@pytest.fixture(autouse=True)
def _emulator_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process gateways read the provider key from the environment, like the real thing."""
    monkeypatch.setenv(EMU_KEY_ENV, "test-key")
