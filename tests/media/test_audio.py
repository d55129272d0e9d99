"""generate_speech and transcribe_audio end to end (stdio and HTTP), their refusals, costs and the ledger; the tool
list an agent is offered for three configurations."""

from __future__ import annotations

import base64
import wave
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import AudioContent, ResourceLink

from emulator import Emulator
from emulator.audio import CHARS_PER_SECOND, speech_wav
from mcp_server.config import parse_config
from mcp_server.errors import ConfigError
from mcp_server.providers import check_models
from tests.support import in_memory_client
from tests.support_audio import SPEECH_MODEL, TRANSCRIBE_MODEL, audio_config, served, tool_list
from tests.support_media import media_config

pytestmark = pytest.mark.anyio
TEXT = "The quick brown fox jumps over the lazy dog, twice, and then once more for luck."


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    return result.structured_content["error"]


BASE_TOOLS = {"chat_complete", "list_models", "get_usage"}


async def test_tools_are_listed_only_for_kinds_the_catalog_serves(config_data: dict[str, Any]) -> None:
    sizes = {}
    async with in_memory_client(config_data) as client:
        names, sizes["chat only"] = await tool_list(client)
    assert names == BASE_TOOLS
    async with in_memory_client(media_config(config_data)) as client:
        names, sizes["image + video"] = await tool_list(client)
    assert names == BASE_TOOLS | {"generate_image", "generate_video", "get_video_status"}
    async with in_memory_client(audio_config(config_data)) as client:
        names, sizes["every kind"] = await tool_list(client)
    assert names == BASE_TOOLS | {
        "generate_image",
        "generate_video",
        "get_video_status",
        "generate_speech",
        "transcribe_audio",
    }
    assert sizes["chat only"] < sizes["image + video"] < sizes["every kind"]
    print("tools/list bytes:", sizes)  # the README quotes these (pytest -s)


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_speak_then_transcribe_and_both_are_in_the_ledger(
    config_data: dict[str, Any], emulator: Emulator, tmp_path: Path, transport: str
) -> None:
    config = audio_config(config_data)
    async with served(config, tmp_path, transport) as client:
        spoken = await client.call_tool("generate_speech", {"text": TEXT, "format": "wav", "voice": "nova"})
        assert not spoken.is_error, spoken.content
        out = spoken.structured_content
        heard = await client.call_tool("transcribe_audio", {"audio": out["uri"], "model": TRANSCRIBE_MODEL})
        stamped = await client.call_tool("transcribe_audio", {"audio": out["uri"], "timestamps": True})
        usage = await client.call_tool("get_usage", {"group_by": "model"})
    audio = [block for block in spoken.content if isinstance(block, AudioContent)]
    link = next(block for block in spoken.content if isinstance(block, ResourceLink))
    data = base64.b64decode(audio[0].data)
    assert audio[0].mime_type == "audio/wav" and link.uri == out["uri"] and out["inline"] is True
    # over HTTP the file also opens without a key at a signed URL; stdio has no such link
    assert ("link" in out) == (transport == "http")
    if "link" in out:
        assert f"/media/{out['id']}?" in out["link"]["url"] and "sig=" in out["link"]["url"]
    assert await anyio.Path(out["path"]).read_bytes() == data and out["bytes"] == len(data)
    with wave.open(out["path"], "rb") as reader:  # a real WAV, as long as the text takes to say
        assert reader.getnframes() / reader.getframerate() == pytest.approx(len(TEXT) / CHARS_PER_SECOND, abs=0.01)
    assert out["duration_s"] == pytest.approx(len(TEXT) / CHARS_PER_SECOND, abs=0.01)
    assert (out["format"], out["voice"], out["characters"]) == ("wav", "nova", len(TEXT))
    assert out["cost_usd"] == pytest.approx(len(TEXT) * 15.0 / 1e6)
    sent = emulator.calls("speech")[-1].json
    assert sent == {"model": "gpt-4o-mini-tts", "input": TEXT, "voice": "nova", "response_format": "wav"}

    assert not heard.is_error, heard.content
    assert heard.structured_content["text"] == TEXT  # the emulator reads back what it spoke
    # plain json carries no duration: genroute measured the WAV itself
    assert heard.structured_content["duration_s"] == pytest.approx(out["duration_s"], abs=0.01)
    assert "segments" not in heard.structured_content
    stamped_out = stamped.structured_content
    assert stamped_out["language"] == "en" and stamped_out["segments"][0]["text"] == "The"
    assert stamped_out["segments"][-1]["end"] == pytest.approx(out["duration_s"], abs=0.01)
    forms = [call.body for call in emulator.calls("transcriptions")]
    assert b'name="response_format"\r\n\r\njson' in forms[0] and b"verbose_json" in forms[1]
    assert forms[0].count(data) == 1  # the file went up whole, as one part

    report = usage.structured_content
    speech_row, transcript_row = report["breakdown"][SPEECH_MODEL], report["breakdown"][TRANSCRIBE_MODEL]
    assert speech_row["characters"] == len(TEXT) and speech_row["cost_usd"] == pytest.approx(out["cost_usd"])
    assert transcript_row["audio_seconds"] == pytest.approx(2 * out["duration_s"], abs=0.01)
    assert transcript_row["cost_usd"] == pytest.approx(2 * out["duration_s"] / 60 * 0.006, abs=1e-6)
    assert report["characters"] == len(TEXT) and report["audio_seconds"] == transcript_row["audio_seconds"]


async def test_large_audio_is_linked_not_inlined(config_data: dict[str, Any], emulator: Emulator) -> None:
    config = audio_config(config_data, audio_inline_max_bytes=1000)
    async with in_memory_client(config) as client:
        result = await client.call_tool("generate_speech", {"text": TEXT, "format": "pcm"})
    assert not result.is_error, result.content
    assert not [block for block in result.content if isinstance(block, AudioContent)]
    out = result.structured_content
    assert out["inline"] is False and out["path"].endswith(".pcm") and out["mime_type"] == "audio/pcm"
    assert out["duration_s"] is not None  # raw pcm is measured too (24 kHz 16-bit mono)


async def test_refused_before_anything_is_sent(config_data: dict[str, Any], emulator: Emulator, tmp_path: Path) -> None:
    config = audio_config(config_data)
    config["models"][SPEECH_MODEL]["max_usd_per_call"] = 0.0001  # 2000 characters would cost 0.03
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.wav").write_text("not audio")
    config["server"]["input_dir"] = str(tmp_path)
    async with in_memory_client(config) as client:
        long = await client.call_tool("generate_speech", {"text": "a" * 2001})
        voice = await client.call_tool("generate_speech", {"text": "hi", "voice": "onyx"})
        fmt = await client.call_tool("generate_speech", {"text": "hi", "format": "flac"})
        costly = await client.call_tool("generate_speech", {"text": "b" * 1000})
        not_audio = await client.call_tool("transcribe_audio", {"audio": base64.b64encode(b"hello").decode()})
        fake = await client.call_tool("transcribe_audio", {"audio": "sub/notes.wav"})
        wrong_kind = await client.call_tool("transcribe_audio", {"audio": "x.wav", "model": SPEECH_MODEL})
    assert error_of(long)["param"] == "text" and "2000" in error_of(long)["message"]
    assert error_of(voice)["param"] == "voice" and "alloy, nova" in error_of(voice)["message"]
    assert error_of(fmt)["param"] == "format" and "wav, mp3, pcm" in error_of(fmt)["message"]
    assert error_of(costly)["code"] == "budget_exceeded" and "max_usd_per_call" in error_of(costly)["message"]
    assert error_of(not_audio)["param"] == "audio"
    assert error_of(fake)["param"] == "audio" and "not WAV" in error_of(fake)["message"]
    assert error_of(wrong_kind)["code"] == "wrong_model_kind" and TRANSCRIBE_MODEL in error_of(wrong_kind)["message"]
    assert not emulator.calls("speech") and not emulator.calls("transcriptions")


async def test_transcription_is_priced_from_the_file_before_the_call(
    config_data: dict[str, Any], emulator: Emulator
) -> None:
    config = audio_config(config_data)
    config["models"][TRANSCRIBE_MODEL]["max_usd_per_call"] = 0.001  # 10 s at 0.006/min: fine; 20 s is not
    short, long = speech_wav("x" * 150), speech_wav("x" * 300)  # 10 s and 20 s
    async with in_memory_client(config) as client:
        fine = await client.call_tool("transcribe_audio", {"audio": base64.b64encode(short).decode()})
        refused = await client.call_tool("transcribe_audio", {"audio": base64.b64encode(long).decode()})
    assert not fine.is_error, fine.content
    assert fine.structured_content["cost_usd"] == pytest.approx(10 / 60 * 0.006)
    assert error_of(refused)["code"] == "budget_exceeded"
    assert len(emulator.calls("transcriptions")) == 1


def test_audio_models_need_a_provider_that_serves_them(config_data: dict[str, Any]) -> None:
    config = audio_config(config_data)
    config["models"][SPEECH_MODEL]["provider"] = "aki"
    with pytest.raises(ConfigError, match=r"models\.tts\.kind.*speech"):
        check_models(parse_config(config))
    config = audio_config(config_data)
    config["models"]["editor"]["provider"] = "aki"
    with pytest.raises(ConfigError, match=r"models\.editor"):
        check_models(parse_config(config))
