"""Test helpers for media: file helpers, and a second loopback web site (models: emulator/configs.py).

`LoopbackSite` is a real HTTP server on 127.0.0.1 (stdlib, in a thread) standing in for "some web site"
a reference_image URL points at: it serves an image, redirects wherever a test says, loops, stalls or
sends too much. Tests make the fetch guard treat it as public the way an operator would, with
`[media] reference_allow_private = ["127.0.0.1:<its port>"]`; everything else on loopback (the
emulator's port) stays private.
"""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from emulator.configs import B64_IMAGE_MODEL as B64_IMAGE_MODEL
from emulator.configs import IMAGE_MODEL as IMAGE_MODEL
from emulator.configs import VIDEO_MODEL as VIDEO_MODEL
from emulator.configs import media_config as media_config
from emulator.media import png_bytes


def png_b64(width: int = 64, height: int = 64) -> str:
    return base64.b64encode(png_bytes(width, height)).decode("ascii")


def file_bytes(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def media_files(config: dict[str, Any]) -> list[Path]:
    root = Path(config["server"]["output_dir"])
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


class LoopbackSite:
    """A small web site on a loopback port: /image.png, /redirect?to=URL, /loop, /big, /slow, /notfound."""

    def __init__(self, big_bytes: int = 64_000) -> None:
        self.paths: list[str] = []
        self.big_bytes = big_bytes
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.paths.append(self.path)
                url = urlparse(self.path)
                if url.path == "/image.png":
                    self._send(200, png_bytes(32, 32), "image/png")
                elif url.path == "/redirect":
                    target = parse_qs(url.query)["to"][0]
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif url.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif url.path == "/big":
                    body = png_bytes(32, 32)
                    self._send(200, body + b"\0" * (site.big_bytes - len(body)), "image/png", chunked=True)
                elif url.path == "/slow":
                    time.sleep(3)
                    self._send(200, png_bytes(32, 32), "image/png")
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status: int, body: bytes, kind: str, chunked: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if not chunked:  # without a length the guard must count the bytes itself
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="loopback-site", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackSite:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
