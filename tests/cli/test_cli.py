"""The genroute command as a user runs it: config errors, models, check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.support import EMU_KEY_ENV, child_env, genroute_argv, write_config


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*genroute_argv(), *args], capture_output=True, text=True, timeout=60, env=env or child_env())


@pytest.mark.parametrize(
    ("content", "key", "problem"),
    [
        ("[server\n", "(syntax)", "not valid TOML"),
        (
            '[providers.x]\nprotocol = "openai"\nbase_url = "https://a/v1"\nkey = "sk-1"\n',
            "providers.x.key",
            "unknown key",
        ),
        ('[providers.x]\nprotocol = "openai"\n', "providers.x", "base_url is required"),
        ('[providers.x]\nprotocol = "grpc"\n', "providers.x.protocol", "'openai', 'aki' or 'local'; got 'grpc'"),
        ('[providers.x]\nprotocl = "openai"\n', "providers.x.protocl", "unknown key: did you mean 'protocol'?"),
        ('[server]\ndata_dri = "d"\n', "server.data_dri", "did you mean 'data_dir'?"),
        (
            '[providers.ark]\nprotocol = "openai"\nbase_url = "https://a/v1"\napi_key = "sk-secret-1"\n',
            "providers.ark.api_key",
            "only from the environment. Set an environment variable (ARK_API_KEY=...) where genroute starts and "
            'name it here instead: api_key_env = "ARK_API_KEY"',
        ),
        (
            '[models.m]\nprovider = "x"\nkind = "audio"\n[providers.x]\nprotocol = "local"\n',
            "models.m.kind",
            "got 'audio'",
        ),
        ('[models.m]\nprovider = "ghost"\n', "models.m.provider", "unknown provider 'ghost'"),
        (
            '[models.m]\nprovider = "x"\n[providers.x]\nprotocol="local"\ntimeout_s = -1\n',
            "providers.x.timeout_s",
            "greater than 0",
        ),
        (  # AKI's adapter serves chat only: refused at load, not with a 400 blamed on the caller at call time
            '[providers.aki]\nprotocol = "aki"\nbase_url = "https://aki.io"\n[models.flux]\nprovider = "aki"\n'
            'kind = "image"\n',
            "models.flux.kind",
            "provider 'aki' (protocol 'aki') serves chat models only, not 'image'",
        ),
    ],
)
def test_config_error_is_one_clear_line(tmp_path: Path, content: str, key: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = run("--config", str(path), "models")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and key in lines[0] and problem in lines[0]
    assert "Traceback" not in result.stderr and "sk-secret-1" not in result.stderr


def test_relative_config_path_shows_what_it_resolved_to(tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    result = subprocess.run(
        [*genroute_argv(), "--config", "genroute.toml", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        cwd=tmp_path / "here",
    )
    assert result.returncode == 2
    assert f"genroute.toml (resolved to {tmp_path / 'here' / 'genroute.toml'}): (file): file not found" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--config", "{path}"],
        ["check", "--config", "{path}", "--log-level", "error"],
        ["--log-level", "DEBUG", "models", "--config", "{path}"],
        ["--config", "/nonexistent.toml", "models", "--config", "{path}"],  # after the command wins
    ],
)
def test_global_options_on_either_side_of_the_command(config_path: Path, args: list[str]) -> None:
    result = run(*(arg.format(path=config_path) for arg in args))
    assert result.returncode == 0, result.stderr
    assert "gpt-5.5" in result.stdout or "config: ok" in result.stdout


def test_keys_subcommand_takes_global_options_too(config_path: Path) -> None:
    result = run("keys", "list", "--config", str(config_path))
    assert result.returncode == 0, result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "nope.toml"), "check")
    assert result.returncode == 2 and "file not found" in result.stderr and "Traceback" not in result.stderr


def test_models_prints_the_catalog(config_path: Path) -> None:
    result = run("--config", str(config_path), "models")
    assert result.returncode == 0, result.stderr
    header, _rule, *rows = result.stdout.strip().splitlines()
    assert header.split()[:3] == ["ID", "KIND", "PROVIDER"]
    assert [row.split()[0] for row in rows] == ["gpt-5.5", "gpt-5.4", "llama3-8b"]
    assert "default-chat" in rows[0] and "$1.25/$10 per Mtok" in rows[0]


def test_config_from_environment_variable(config_path: Path) -> None:
    result = run("models", env=child_env(GENROUTE_CONFIG=str(config_path)))
    assert result.returncode == 0 and "gpt-5.5" in result.stdout


def check_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in result.stdout.strip().splitlines() if not line.startswith(" "))


def test_check_says_what_was_really_checked(config_data: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    """ "ok" only for a verified key. ArkRoute's model list is public (the emulator's too), so it proves the URL but
    not the key; AKI.IO's /api/validate_key checks the key for free, so a wrong AKI key is a bad key."""
    providers = config_data["providers"]
    providers["akiwrong"] = {**providers["aki"], "api_key_env": "GENROUTE_TEST_WRONG_KEY"}
    providers["nokey"] = {**providers["arkroute"], "api_key_env": "GENROUTE_TEST_UNSET_KEY"}
    providers["down"] = {**providers["arkroute"], "base_url": "http://127.0.0.1:9/v1"}
    path = write_config(tmp_path / "check.toml", config_data)
    emulator.known_models = {"gpt-5.5"}
    result = run("--config", str(path), "check", env=child_env(GENROUTE_TEST_WRONG_KEY="bad"))
    lines = check_lines(result)
    assert result.returncode == 1
    assert lines["config"].startswith("ok")
    assert lines["arkroute"] == (
        "reachable, key not checked (GET /models listed 1 model, but answers a wrong key too (HTTP 200)); "
        "the first call will tell"
    )
    assert lines["aki"] == "ok, key verified (GET /api/validate_key accepted it)"
    assert lines["akiwrong"].startswith("bad key: Provider 'akiwrong' answered HTTP 401: Invalid API key")
    assert lines["nokey"].startswith("missing key") and "GENROUTE_TEST_UNSET_KEY" in lines["nokey"]
    assert lines["down"].startswith("unreachable")
    assert EMU_KEY_ENV not in result.stdout and "test-key" not in result.stdout + result.stderr
    assert "key=" not in result.stdout + result.stderr  # AKI's key travels in the query string: never shown


def test_check_verifies_a_key_where_a_wrong_one_is_refused(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    providers = config_data["providers"]
    config_data["providers"] = {
        "arkroute": providers["arkroute"],
        "wrongkey": {**providers["arkroute"], "api_key_env": "GENROUTE_TEST_WRONG_KEY"},
        "keyless": {**providers["arkroute"], "api_key_env": None},
    }
    del config_data["providers"]["keyless"]["api_key_env"]
    config_data["models"] = {}
    config_data["presets"] = {}
    path = write_config(tmp_path / "check.toml", config_data)
    emulator.models_need_key = True  # as OpenAI's own /models
    result = run("--config", str(path), "check", env=child_env(GENROUTE_TEST_WRONG_KEY="bad"))
    lines = check_lines(result)
    assert result.returncode == 1
    assert (
        lines["arkroute"].startswith("ok, key verified (GET /models listed ")
        and "wrong key gets HTTP 401" in (lines["arkroute"])
    )
    assert lines["wrongkey"].startswith("bad key: Provider 'wrongkey' answered HTTP 401")
    assert lines["keyless"].startswith("bad key")  # no key configured, and the listing needs one


def test_check_bad_key(config_data: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    config_data["providers"] = {"arkroute": config_data["providers"]["arkroute"]}
    config_data["models"] = {}
    config_data["presets"] = {}
    path = write_config(tmp_path / "check.toml", config_data)
    # OpenAI's own /models checks the key (ArkRoute's is public): answer as such a provider would
    emulator.fail_next("models", status=401)
    result = run("--config", str(path), "check")
    assert result.returncode == 1
    assert result.stdout.splitlines()[1].startswith("arkroute: bad key")


def test_python_dash_m_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "mcp_server", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "serve" in result.stdout and "check" in result.stdout


def test_readme_config_reference_is_a_valid_config() -> None:
    """The README's config reference must stay true: it parses and validates as a real config."""
    import re
    import tomllib

    from mcp_server.config import parse_config
    from mcp_server.providers import check_models

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    config = parse_config(tomllib.loads(block.group(1)), source="README.md")
    check_models(config)  # every model on a provider that serves its kind
    assert {"arkroute", "aki"} <= set(config.providers)
    assert {m.kind for m in config.models.values()} == {"chat", "image", "video", "speech", "transcription"}
