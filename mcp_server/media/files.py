"""Media files on disk: names genroute chooses, written only inside the output root.

A file's name is its media id: `<UTC time>-<model slug>-<12 hex>.<ext>`. Nothing a client sends (prompt,
arguments) ever becomes part of a path, the root is resolved (symlinks included) before anything is
written, files are created exclusively without following links, and a name must match the id pattern
before it is looked up, so neither `../` nor a planted symlink leads outside the root.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from mcp_server.errors import ServerFault
from mcp_server.private_files import create_private, private_dir

MIME_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",  # Opus in Ogg, OpenAI's "opus"
    "aac": "audio/aac",
    "pcm": "audio/pcm",  # raw 16-bit 24 kHz mono, OpenAI's "pcm"
}
IMAGE_EXTENSIONS = ("png", "jpg", "webp", "gif")
VIDEO_EXTENSIONS = ("mp4", "webm", "mov")
AUDIO_EXTENSIONS = ("wav", "mp3", "flac", "ogg", "aac")  # recognised by their first bytes (pcm has no header)
MEDIA_ID = re.compile(r"^\d{8}-\d{6}-[a-z0-9-]{1,48}-[0-9a-f]{12}\.(?:" + "|".join(MIME_TYPES) + r")$")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def sniff_extension(head: bytes) -> str | None:
    """The file type from its first bytes (never from a name or a Content-Type an upstream chose)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return _sniff_audio(head)


def _sniff_audio(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "mp3"  # an ID3 tag, or an MPEG audio layer III frame sync
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS frame sync, layer 00
    return None


def model_slug(model: str) -> str:
    slug = _SLUG_JUNK.sub("-", model.lower()).strip("-")[:40].strip("-")
    return slug or "model"


def new_media_id(model: str, extension: str, now: datetime | None = None) -> str:
    if extension not in MIME_TYPES:
        raise ValueError(f"unsupported media extension {extension!r}")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{model_slug(model)}-{secrets.token_hex(6)}.{extension}"


def is_media_id(value: str) -> bool:
    return bool(MEDIA_ID.match(value))


def mime_type_of(media_id: str) -> str:
    return MIME_TYPES[media_id.rsplit(".", 1)[-1]]


def made_at(media_id: str) -> datetime | None:
    """When a genroute media id says its file was made (UTC); None for anything else."""
    if not is_media_id(media_id):
        return None
    try:
        return datetime.strptime(media_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class MediaRoot:
    """The output directory. `directory()` resolves it (following a symlinked root to its target) and creates it."""

    def __init__(self, configured: Path, setting: str = "[server] output_dir") -> None:
        self.configured = configured
        self.setting = setting  # the config key an "unwritable" error points at

    def directory(self) -> Path:
        root = self.configured.expanduser().resolve()
        try:
            private_dir(root)
        except OSError as exc:
            raise _unwritable(root, exc.strerror or "cannot create it", self.setting) from None
        if not root.is_dir():
            raise _unwritable(root, "it is not a directory", self.setting)
        if not os.access(root, os.W_OK | os.X_OK):
            raise _unwritable(root, "permission denied", self.setting)
        return root

    def create(self, media_id: str) -> tuple[Path, Path, int]:
        """A fresh temporary file next to the final one: (final path, temp path, fd). Publish with `commit`."""
        if not is_media_id(media_id):
            raise ValueError(f"not a media id: {media_id!r}")
        root = self.directory()
        final = root / media_id
        temp = root / f".{media_id}.{secrets.token_hex(4)}.part"
        try:
            fd = create_private(temp)
        except OSError as exc:
            raise _unwritable(root, exc.strerror or "cannot create a file", self.setting) from None
        return final, temp, fd

    @staticmethod
    def commit(temp: Path, final: Path) -> None:
        """Publish a written file under its final name; a killed process leaves only a `.part` file."""
        os.replace(temp, final)

    def find(self, media_id: str) -> Path | None:
        """The file for an id, or None: unknown ids, symlinks and anything resolving outside the root are refused."""
        if not is_media_id(media_id):
            return None
        root = self.configured.expanduser().resolve()
        candidate = root / media_id
        try:
            if candidate.is_symlink() or not candidate.is_file():
                return None
            real = candidate.resolve(strict=True)
        except OSError:
            return None
        return real if real.parent == root else None


def _unwritable(root: Path, reason: str, setting: str) -> ServerFault:
    return ServerFault(
        f"Cannot save media in {root}: {reason}. Set {setting} in the config to a writable folder.",
        code="output_dir_unwritable",
    )
