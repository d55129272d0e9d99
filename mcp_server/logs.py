"""Logging to stderr only (stdout is the stdio protocol channel), with provider keys and genroute's own client
keys (`gr_...`) scrubbed from every line."""

from __future__ import annotations

import logging
import re
import sys

from mcp_server.providers.redact import Redactor

_CLIENT_KEY = re.compile(r"gr_[A-Za-z0-9_-]{16,}")


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return _CLIENT_KEY.sub("gr_[redacted]", self._redact(super().format(record)))


def configure_logging(level: str, redact: Redactor | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter(redact or Redactor()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines and HTTP client chatter only at debug level.
    noisy_loggers = ("httpx2", "httpcore2", "uvicorn.access", "mcp.server.lowlevel.server", "sse_starlette")
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
