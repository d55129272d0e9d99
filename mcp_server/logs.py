"""Logging to stderr only (stdout is the stdio protocol channel), with provider keys and genroute's own client
keys (`gr_...`) scrubbed from every line, and no line forgeable from outside.

Prompt names, key names, model ids and upstream texts reach log lines; a newline or carriage return in one could
start a line that looks like genroute's own, and an escape sequence could drive the operator's terminal. So every
control character in a record's message is escaped (`\\n`, `\\x1b`, ...), once, here: each record is one line
that starts with its timestamp, and the lines of a traceback that follow it are indented.
"""

from __future__ import annotations

import logging
import re
import sys

from mcp_server.providers.redact import Redactor

_CLIENT_KEY = re.compile(r"gr_[A-Za-z0-9_-]{16,}")
# C0 controls (newline, carriage return, escape, ...), DEL, C1 controls, and the Unicode line and paragraph
# separators some viewers break lines at.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTINUATION = "\n    "


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape_controls(text: str) -> str:
    """`text` on one line: every control character written as its escape."""
    return _CONTROL.sub(_escape, text)


def _indented(text: str) -> str:
    """A traceback keeps its lines, each indented (so none can pass for a record) and escaped within."""
    return "".join(_CONTINUATION + escape_controls(line) for line in text.split("\n"))[1:]


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact

    # logging's own names: the message line escaped, a traceback or stack indented
    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: object) -> str:
        return _indented(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))

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
