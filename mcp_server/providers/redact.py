"""Configured secrets kept out of what came from upstream, in every spelling a server might echo them back in.

An upstream that repeats the key it got may do so bare, after `Bearer`, percent-encoded (in a URL or a form
body, once or twice, in either hex case), or JSON-escaped. The pattern matches each character of a secret in any
of those spellings, so a mixed one matches too.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_server.config import GatewayConfig

MASK = "[redacted]"
MIN_SECRET = 4  # shorter "secrets" would redact ordinary words
MAX_SPELLING = 20  # characters one secret character can take when spelt out (4 UTF-8 bytes as %25XX)
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")


def _spellings(char: str) -> str:
    """One character of a secret as itself, percent-encoded (%XX or %25XX, any case) or JSON-escaped."""
    forms = [re.escape(char), "(?i:" + "".join(f"%(?:25)?{byte:02x}" for byte in char.encode()) + ")"]
    if ord(char) < 0x10000:
        forms.append(f"(?i:\\\\u{ord(char):04x})")
    escaped = json.dumps(char)[1:-1]  # `\"`, `\\`, `\n`: the characters JSON escapes with a backslash
    if escaped != char:
        forms.append(re.escape(escaped))
    if char == "/":
        forms.append(r"\\/")
    elif char == " ":
        forms.append(r"\+")
    return "(?:" + "|".join(forms) + ")"


class Redactor:
    """Removes every given secret (and any bearer token) from text, or from every string inside a JSON value."""

    def __init__(self, *secrets: str | None) -> None:
        kept = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
        self._secrets = kept
        self._pattern = re.compile("|".join("".join(map(_spellings, s)) for s in kept)) if kept else None
        # Text without these characters can hold a secret only bare: str.replace finds that ~10x faster than the
        # pattern, which matters on the log path (every line is redacted).
        self._escapes = "%\\" + ("+" if any(" " in s for s in kept) else "")
        self.margin = MAX_SPELLING * max(map(len, kept), default=0)

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            if any(char in text for char in self._escapes):
                text = self._pattern.sub(MASK, text)
            else:
                for secret in self._secrets:
                    text = text.replace(secret, MASK)
        return _BEARER.sub("Bearer " + MASK, text) if "bearer" in text.lower() else text

    def scrub(self, value: Any) -> Any:
        """`value` (parsed JSON, or any mix of dicts, lists and strings) with every string in it redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.scrub(key): self.scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        return value

    def head(self, text: str, limit: int) -> str:
        """At most about `limit` characters of `text`, redacted. Cutting before redacting could leave the front
        of a secret at the cut, so the last `margin` characters before it (where such a front may be) go too."""
        if len(text) <= limit:
            return self(text)
        return self(text[:limit])[: -self.margin or None]


def redactor_for(config: GatewayConfig) -> Redactor:
    """Every secret the config points at (each provider's key, the OAuth client's credentials), for the logs and
    for every provider's failures: an upstream may echo any key it was ever sent, not just its own."""
    secrets = [value for provider in config.providers.values() for _, value in provider.api_keys()]
    if config.http.oauth is not None:
        secrets.extend(config.http.oauth.client_credentials() or ())
    return Redactor(*secrets)
