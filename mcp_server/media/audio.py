"""How long a piece of audio is, read from the bytes: what a transcription is priced and counted by when the
upstream does not say, and what generate_speech reports.

Measured: WAV (the stdlib `wave` module: frames / rate) and raw PCM (OpenAI's "pcm": 16-bit mono at 24 kHz).
Not measured: MP3, FLAC, Ogg/Opus, AAC (their length needs a decoder or a frame walk): `upper_bound_seconds`
gives a budget a figure no shorter than the truth instead.
"""

from __future__ import annotations

import io
import wave

PCM_RATE = 24_000  # OpenAI's raw "pcm" speech output: 24 kHz, 16-bit, mono
LOWEST_BITRATE_BPS = 8_000  # compressed speech below this is rare: bytes * 8 / this is at least its length


def duration_seconds(data: bytes, extension: str) -> float | None:
    """The audio's length in seconds, or None where the format is not measured (see the module docstring)."""
    if extension == "pcm":
        return len(data) / (PCM_RATE * 2)
    if extension != "wav":
        return None
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            rate = reader.getframerate()
            return reader.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


def upper_bound_seconds(data: bytes, extension: str) -> float:
    """The measured length, else what the file would last at LOWEST_BITRATE_BPS (longer than it really does)."""
    measured = duration_seconds(data, extension)
    return measured if measured is not None else len(data) * 8 / LOWEST_BITRATE_BPS
