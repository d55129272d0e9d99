"""The emulator's multipart and audio routes: /images/edits, /audio/speech, /audio/transcriptions.

Hooked into emulator/app.py by two lines (ROUTES and the route list); the handlers take the Emulator as their
first argument. Everything is real bytes: edits decode every multipart part (images through Pillow) and echo what
they received; speech answers a real WAV (16 kHz mono, 16-bit) whose length follows the text, and carries the
text in a `gtxt` chunk (which readers skip); transcription reads the upload's real duration with `wave`, and gives
back the text of a WAV this emulator spoke.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
import time
import wave
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator import chat, media

if TYPE_CHECKING:
    from emulator.app import Emulator, Fault, RecordedRequest

ROUTES = frozenset({"image_edits", "speech", "transcriptions"})
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
CHARS_PER_SECOND = 15.0  # speech runs at about this pace
SAMPLE_RATE = 16_000
TEXT_CHUNK = b"gtxt"
# Compressed formats are stand-ins with the right first bytes (no encoder here), like the MP4 stand-in.
_STAND_INS = {"mp3": b"ID3\x04\x00\x00", "opus": b"OggS\x00\x02", "aac": b"\xff\xf1\x50\x80", "flac": b"fLaC"}


def routes(emu: Emulator, prefix: str, auth: str) -> list[Route]:
    def bound(handler: Any) -> Any:
        async def run(request: Request, rec: RecordedRequest, fault: Fault | None) -> Response:
            return await handler(emu, request, rec)

        return run

    return [
        Route(f"{prefix}/images/edits", emu._wrap("image_edits", auth, bound(image_edits)), methods=["POST"]),
        Route(f"{prefix}/audio/speech", emu._wrap("speech", auth, bound(speech)), methods=["POST"]),
        Route(
            f"{prefix}/audio/transcriptions", emu._wrap("transcriptions", auth, bound(transcriptions)), methods=["POST"]
        ),
    ]


# ----- multipart ---------------------------------------------------------------------------------


def decode_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Every part of a multipart/form-data body: (form fields, files as {field, filename, content_type, data}).
    Tests use it on a recorded request to see exactly what was sent."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise chat.Invalid(None, "Expected a multipart/form-data body.", status=400)
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, str] = {}
    files: list[dict[str, Any]] = []
    parts: list[Message] = list(message.iter_parts()) if message.is_multipart() else []  # type: ignore[attr-defined]
    if not parts:
        raise chat.Invalid(None, "The multipart body has no parts.", status=400)
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            fields[str(name)] = data.decode("utf-8")
        else:
            files.append({"field": name, "filename": filename, "content_type": part.get_content_type(), "data": data})
    return fields, files


def _image_info(data: bytes, field: str) -> dict[str, Any]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            return {"format": image.format, "width": image.width, "height": image.height, "alpha": alpha}
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise chat.Invalid(field, f"Invalid '{field}': expected a PNG, JPEG or WebP image.") from None


async def image_edits(emu: Emulator, request: Request, rec: RecordedRequest) -> Response:
    fields, files = decode_multipart(rec.headers.get("content-type", ""), rec.body)
    model, prompt = chat.require_str(fields, "model"), chat.require_str(fields, "prompt")
    emu._check_model(model)
    n = int(fields.get("n", "1")) if fields.get("n", "1").isdigit() else 0
    if not 1 <= n <= 10:
        raise chat.Invalid("n", f"Invalid 'n': expected an integer from 1 to 10, got {fields.get('n')!r}.")
    images = [f for f in files if f["field"] in ("image", "image[]")]
    masks = [f for f in files if f["field"] == "mask"]
    if not images:
        raise chat.Invalid("image", "Missing required parameter: 'image'.", code="missing_required_parameter")
    received = []
    for file in images + masks:
        info = await asyncio.to_thread(_image_info, file["data"], file["field"])
        received.append({k: v for k, v in file.items() if k != "data"} | {"bytes": len(file["data"])} | info)
    first = received[0]
    for mask in received[len(images) :]:
        if mask["format"] != "PNG" or not mask["alpha"]:
            raise chat.Invalid("mask", "Invalid 'mask': expected a PNG with an alpha channel.")
        if (mask["width"], mask["height"]) != (first["width"], first["height"]):
            raise chat.Invalid("mask", "Invalid 'mask': it must have the same size as the image.")
    size = fields.get("size") or f"{first['width']}x{first['height']}"
    try:
        width, height = media.parse_size(size)
    except ValueError as exc:
        raise chat.Invalid("size", str(exc)) from None
    b64 = await asyncio.to_thread(media.kind_png_b64, media.image_kind(prompt), width, height)
    data = [{"b64_json": b64, "revised_prompt": prompt} for _ in range(n)]
    echo = {"fields": fields, "files": received}
    return JSONResponse({"created": int(time.time()), "data": data, "received": echo})


# ----- speech ------------------------------------------------------------------------------------


def speech_wav(text: str, speed: float = 1.0) -> bytes:
    """A real WAV: a 220 Hz tone as long as the text takes to say at `speed`, the text in a `gtxt` chunk."""
    seconds = max(len(text) / CHARS_PER_SECOND / speed, 0.2)
    frames = int(seconds * SAMPLE_RATE)
    tone = [int(8000 * math.sin(2 * math.pi * 220 * i / SAMPLE_RATE)) for i in range(SAMPLE_RATE // 220 * 10)]
    samples = (tone * (frames // len(tone) + 1))[:frames]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(struct.pack(f"<{frames}h", *samples))
    encoded = text.encode("utf-8")
    chunk = TEXT_CHUNK + struct.pack("<I", len(encoded)) + encoded + (b"\0" if len(encoded) % 2 else b"")
    riff = buffer.getvalue() + chunk
    return riff[:4] + struct.pack("<I", len(riff) - 8) + riff[8:]


async def speech(emu: Emulator, request: Request, rec: RecordedRequest) -> Response:
    body = chat.require_object(rec.json)
    model, text = chat.require_str(body, "model"), chat.require_str(body, "input")
    emu._check_model(model)
    voice = chat.require_str(body, "voice")
    if voice not in VOICES:
        raise chat.Invalid("voice", f"Invalid 'voice': expected one of {', '.join(VOICES)}.")
    fmt = body.get("response_format") or "mp3"
    if fmt not in FORMATS:
        raise chat.Invalid("response_format", f"Invalid 'response_format': expected one of {', '.join(FORMATS)}.")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        raise chat.Invalid("speed", "Invalid 'speed': expected a number from 0.25 to 4.0.")
    if len(text) > 4096:
        raise chat.Invalid("input", "Invalid 'input': at most 4096 characters.")
    audio = await asyncio.to_thread(speech_wav, text, float(speed))
    if fmt == "pcm":
        audio = audio[44 : 44 + struct.unpack("<I", audio[40:44])[0]]  # the samples only (24 kHz in OpenAI's)
    elif fmt != "wav":
        audio = _STAND_INS[fmt] + audio
    types = {"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac"}
    return Response(audio, media_type=types.get(fmt, "audio/flac"))


# ----- transcription -----------------------------------------------------------------------------


def read_wav(data: bytes) -> tuple[float, str | None]:
    """(duration in seconds, the text of a `gtxt` chunk if any); ValueError if it is not a WAV."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            duration = reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError) as exc:
        raise ValueError("not a WAV file") from exc
    offset, text = 12, None
    while offset + 8 <= len(data):
        name, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        if name == TEXT_CHUNK:
            text = data[offset + 8 : offset + 8 + size].decode("utf-8", "replace")
        offset += 8 + size + size % 2
    return duration, text


async def transcriptions(emu: Emulator, request: Request, rec: RecordedRequest) -> Response:
    fields, files = decode_multipart(rec.headers.get("content-type", ""), rec.body)
    model = chat.require_str(fields, "model")
    emu._check_model(model)
    uploads = [f for f in files if f["field"] == "file"]
    if not uploads:
        raise chat.Invalid("file", "Missing required parameter: 'file'.", code="missing_required_parameter")
    fmt = fields.get("response_format", "json")
    if fmt not in ("json", "text", "verbose_json"):
        raise chat.Invalid("response_format", "Invalid 'response_format': expected json, text or verbose_json.")
    try:
        duration, spoken = read_wav(uploads[0]["data"])
    except ValueError:
        raise chat.Invalid("file", "Invalid file format: the emulator decodes WAV only.") from None
    text = spoken or f"({duration:.1f} seconds of sound)"
    if fmt == "text":
        return Response(text, media_type="text/plain")
    if fmt == "json":
        return JSONResponse({"text": text})  # OpenAI's plain json: no duration
    words = text.split() or [text]
    step = duration / len(words)
    segments = [
        {"id": i, "start": round(i * step, 3), "end": round((i + 1) * step, 3), "text": word}
        for i, word in enumerate(words)
    ]
    language = fields.get("language") or "en"
    return JSONResponse(
        {"task": "transcribe", "language": language, "duration": round(duration, 3), "text": text, "segments": segments}
    )
