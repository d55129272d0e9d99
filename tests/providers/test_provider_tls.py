"""Provider clients share one TLS context (built once, in the background) and it still checks certificates."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from mcp_server.providers.http import tls_context
from tests.support import EMU_KEY_ENV, in_memory_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """A TLS server on loopback with a self-signed certificate; records how each handshake ended."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        [*request, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    outcomes: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(65536)
                    tls.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                    outcomes.append("served")
            except (ssl.SSLError, OSError) as exc:
                outcomes.append(f"refused: {exc}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], outcomes
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


async def test_an_untrusted_certificate_is_refused(
    self_signed_server: tuple[int, list[str]], config_data: dict[str, Any], emulator: Emulator
) -> None:
    port, outcomes = self_signed_server
    config_data["providers"]["tls"] = {
        "protocol": "openai",
        "base_url": f"https://127.0.0.1:{port}/v1",
        "api_key_env": EMU_KEY_ENV,
        "timeout_s": 10,
    }
    config_data["models"]["tls-model"] = {"provider": "tls", "kind": "chat"}
    async with in_memory_client(config_data) as client:
        refused = await client.call_tool("chat_complete", {"prompt": "hi", "model": "tls-model"})
        plain = await client.call_tool("chat_complete", {"prompt": "hi", "model": "gpt-5.5"})
    assert refused.is_error and refused.structured_content is not None
    assert refused.structured_content["error"]["code"] == "upstream_unreachable"
    assert outcomes and all(outcome.startswith("refused") for outcome in outcomes), outcomes
    assert not plain.is_error  # the plain-HTTP provider beside it is unaffected


def test_the_shared_context_is_built_once_and_verifies() -> None:
    assert tls_context() is tls_context()
    assert tls_context().verify_mode == ssl.CERT_REQUIRED and tls_context().check_hostname
