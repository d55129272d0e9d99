"""An input file from a tool argument (a reference image, a mask, audio to transcribe): base64, a data: URL, an
http(s) URL (guarded), a `media://` id of a file genroute saved, or a file in input_dir.

Never an arbitrary local path: a path is read only when it resolves inside the configured input_dir, a media id
only through the registry (which refuses anything that is not one of its ids). The bytes must be of an accepted
type (checked by their first bytes) within `[media] reference_max_bytes`.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import anyio
from pydantic import BaseModel

from mcp_server.errors import GatewayError, invalid_argument
from mcp_server.media.fetch import GuardedFetcher
from mcp_server.media.files import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, MIME_TYPES, sniff_extension
from mcp_server.media.registry import URI_SCHEME, MediaRegistry

_PATH_HINTS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".wav", ".mp3", ".flac", ".ogg", ".opus", ".aac", ".m4a")
IMAGES = "a PNG, JPEG, WebP or GIF image"
AUDIO = "WAV, MP3, FLAC, Ogg/Opus or AAC audio"
MAX_PATH_CHARS = 1024  # a name relative to input_dir; longer ones are not worth a system call


class ReferenceImage(BaseModel):
    """An input file's bytes and type (images and audio alike)."""

    data: bytes
    mime_type: str
    extension: str = "png"

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


async def load_reference_image(
    value: str,
    *,
    param: str,
    input_dir: Path | None,
    fetcher: GuardedFetcher,
    max_bytes: int,
    media: MediaRegistry | None = None,
    audio: bool = False,
) -> ReferenceImage:
    """The file `value` names, which must be an image (or, with `audio`, audio); GatewayError naming `param`."""
    kinds = (AUDIO_EXTENSIONS, AUDIO) if audio else (IMAGE_EXTENSIONS, IMAGES)
    text = value.strip()
    if not text:
        raise invalid_argument(param, f"{param} is empty.")
    lowered = text[:16].lower()
    if lowered.startswith(URI_SCHEME) and media is not None:
        data = await _read_media(text.removeprefix(URI_SCHEME), param, media, max_bytes)
    elif lowered.startswith("data:"):
        data = _decode_data_url(text, param, max_bytes, kinds)
    elif lowered.startswith(("http://", "https://")):
        data = await fetcher.fetch(text, param=param)
    elif lowered.startswith("file:"):
        raise invalid_argument(param, f"{param} does not take file: URLs; pass a path relative to the input folder.")
    else:
        data = _decode_base64(text, param, max_bytes, kinds[0])
        if data is None:
            data = await _read_input_file(text, param, input_dir, max_bytes, kinds[1])
    return _as_image(data, param, max_bytes, kinds)


async def _read_media(media_id: str, param: str, media: MediaRegistry, max_bytes: int) -> bytes:
    try:
        _, data = await media.read(media_id, max_bytes)
    except GatewayError as error:
        raise invalid_argument(param, f"{param}: {error.message}") from None
    return data


def _decode_base64(text: str, param: str, max_bytes: int, extensions: tuple[str, ...]) -> bytes | None:
    """Plain base64 that decodes to an accepted type, else None (the value may be a file name instead)."""
    if len(text) > 4 * (max_bytes // 3 + 1) + 1024:  # refused without decoding a huge string
        raise _too_large(param, max_bytes)
    compact = "".join(text.split())
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if sniff_extension(data[:16]) in extensions else None


def _decode_data_url(text: str, param: str, max_bytes: int, kinds: tuple[tuple[str, ...], str]) -> bytes:
    header, sep, payload = text.partition(",")
    if not sep or ";base64" not in header.lower():
        raise invalid_argument(param, f"{param} data: URLs must be base64, like data:image/png;base64,iVBOR...")
    data = _decode_base64(payload, param, max_bytes, kinds[0])
    if data is None:
        raise invalid_argument(param, f"{param} data: URL does not hold {kinds[1]}.")
    return data


async def _read_input_file(text: str, param: str, input_dir: Path | None, max_bytes: int, what: str) -> bytes:
    looks_like_path = "/" in text or "\\" in text or text.lower().endswith(_PATH_HINTS)
    if not looks_like_path:
        raise invalid_argument(
            param,
            f"{param} must be base64 {'audio' if what == AUDIO else 'image'} data, a data: URL, an http(s) URL, "
            "a media:// id, or a file in the input folder.",
        )
    if input_dir is None:
        raise invalid_argument(
            param,
            f"{param} looks like a file path, but no input folder is configured, so local files cannot be read. "
            f"Pass the {'audio' if what == AUDIO else 'image'} as base64 or a data: URL, or set [server] input_dir in "
            "the config.",
        )
    if len(text) > MAX_PATH_CHARS or "\0" in text:
        raise invalid_argument(
            param, f"{param} is not a usable file name (at most {MAX_PATH_CHARS} characters, no NUL bytes)."
        )
    try:
        root = await (await anyio.Path(input_dir).expanduser()).resolve()
        candidate = await (root / text).resolve()  # absolute `text` replaces root; both are checked below
        if not candidate.is_relative_to(root):
            raise invalid_argument(param, f"{param} path is outside the input folder; only files in it can be read.")
        shown = candidate.relative_to(root).as_posix()  # never the server's absolute paths
        if not await candidate.is_file():
            raise invalid_argument(param, f"{param}: there is no file '{shown}' in the input folder.")
        if (await candidate.stat()).st_size > max_bytes:
            raise _too_large(param, max_bytes)
        return await candidate.read_bytes()
    except (OSError, RuntimeError) as exc:  # too long, too deep, a link loop (RuntimeError), unreadable
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it cannot be resolved"
        raise invalid_argument(param, f"{param} could not be read from the input folder: {reason}.") from None


def _too_large(param: str, max_bytes: int) -> GatewayError:
    return invalid_argument(param, f"{param} is larger than {max_bytes} bytes ([media] reference_max_bytes).")


def _as_image(data: bytes, param: str, max_bytes: int, kinds: tuple[tuple[str, ...], str]) -> ReferenceImage:
    if len(data) > max_bytes:
        raise _too_large(param, max_bytes)
    extension = sniff_extension(data[:16])
    if extension not in kinds[0]:
        raise invalid_argument(param, f"{param} is not {kinds[1]}.")
    return ReferenceImage(data=data, mime_type=MIME_TYPES[extension], extension=extension)
