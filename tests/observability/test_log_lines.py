"""Log lines cannot be forged, and a bad prompts/get is a clear -32602 rather than a logged traceback.

Text from outside (upstream error messages, prompt names, key names, model ids) reaches log lines. A newline in
it must not start a line that reads like one of genroute's own records, and an escape sequence must not reach the
operator's terminal: the formatter escapes every control character, once for every line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from emulator import Emulator
from mcp_server.logs import configure_logging
from mcp_server.providers.redact import Redactor
from tests.faults_support import error_of
from tests.support import GatewayProcess, base_config, write_config
from tests.support_media import VIDEO_MODEL, media_config

pytestmark = pytest.mark.anyio
FORGED = "2099-01-01 00:00:00,000 CRITICAL genroute.access: key admin revoked"
HOSTILE = f"boom\r\n{FORGED}\x1b[2J\x1b]0;owned\x07\x85\u2028"


@pytest.fixture(scope="module")
def gateway(emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One `genroute serve --http` (DEBUG logs) for the module; each test reads the log lines it caused."""
    folder = tmp_path_factory.mktemp("log-lines")
    config = write_config(folder / "genroute.toml", media_config(base_config(emulator_server, folder)))
    with GatewayProcess(config) as running:
        yield running


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger as configure_logging leaves it, restored afterwards (pytest's own capture included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def assert_unforged(log: str) -> None:
    lines = log.splitlines()
    assert not any(line.startswith("2099-01-01") for line in lines), log
    assert "\x1b" not in log and "\x85" not in log and "\u2028" not in log and "\r" not in log


def test_every_control_character_is_escaped_and_tracebacks_are_indented(
    root_logger: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", Redactor("sk-secret-key"))
    log = logging.getLogger("genroute.test")
    log.warning("video job %s failed: %s", "vid-1", HOSTILE + " sk-secret-key")
    try:
        raise ValueError(f"upstream said {HOSTILE}")
    except ValueError:
        log.exception("model %s raised", "evil\nmodel")
    err = capfd.readouterr().err
    assert_unforged(err)
    first, *rest = err.splitlines()
    assert first.endswith(
        "WARNING genroute.test: video job vid-1 failed: boom\\r\\n" + FORGED + "\\x1b[2J\\x1b]0;owned\\x07\\x85\\u2028"
        " [redacted]"
    )
    header, *traceback = rest
    assert header.endswith("ERROR genroute.test: model evil\\nmodel raised")
    assert traceback[0] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in traceback), traceback  # none can pass for a record
    assert "    ValueError: upstream said boom\\r" in traceback  # its message's own lines stay indented too
    assert traceback[-1] == "    " + FORGED + "\\x1b[2J\\x1b]0;owned\\x07\\x85\\u2028"


async def test_upstream_text_in_a_log_line_is_escaped(gateway: GatewayProcess, emulator: Emulator) -> None:
    """A video provider's failure message is logged (INFO) by the real server: on one line, escaped."""
    emulator.video_run_s = 0.2
    emulator.video_fail = HOSTILE
    async with Client(gateway.mcp_url) as client:
        result = await client.call_tool("generate_video", {"prompt": "p", "model": VIDEO_MODEL, "wait_s": 15})
    assert error_of(result)["code"] == "generation_failed"
    log = gateway.stderr()
    assert_unforged(log)
    assert "failed: boom\\r\\n2099-01-01 00:00:00,000 CRITICAL" in log


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # two SDK dispatchers: today -32603 and code 0
async def test_unknown_prompt_and_missing_arguments_are_invalid_params(gateway: GatewayProcess, mode: str) -> None:
    before = len(gateway.stderr())
    async with Client(gateway.mcp_url, mode=mode) as client:
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt(f"nope\n{FORGED}", {})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("blog-writer", {"topic": "tides"})
        rendered = await client.get_prompt("blog-writer", {"topic": "tides", "audience": "kids"})
    assert unknown.value.code == -32602 and missing.value.code == -32602
    assert unknown.value.message.startswith("Unknown prompt 'nope\\n2099") and "blog-writer" in unknown.value.message
    assert missing.value.message.startswith("Prompt 'blog-writer' needs the argument(s) audience")
    assert rendered.messages[0].content.text.startswith("Write a blog post about tides for kids")  # type: ignore[union-attr]
    log = gateway.stderr()[before:]
    assert "Traceback" not in log and " ERROR " not in log, log
    assert_unforged(log)
