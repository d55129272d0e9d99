"""generate_speech and transcribe_audio: validate against the model's card, call through the router (budgets,
ledger, fallbacks), save or read the audio through the media registry."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import AudioContent, CallToolResult, ContentBlock, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.access import identity
from mcp_server.catalog import ModelCard
from mcp_server.errors import invalid_argument
from mcp_server.gateway import Gateway
from mcp_server.media.audio import duration_seconds, upper_bound_seconds
from mcp_server.media.files import sniff_extension
from mcp_server.media.links import SignedLink, publish, resource_link
from mcp_server.media.previews import b64_size
from mcp_server.providers.base import Segment, SpeechRequest, SpeechResult, TranscriptionRequest, TranscriptionResult
from mcp_server.router import Route
from mcp_server.tools.inputs import as_part, load_input
from mcp_server.tools.results import OptionalText, absent_when_none, guarded, ok
from mcp_server.usage.cost import Quantities, cost

Format = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
FORMATS: tuple[str, ...] = ("mp3", "opus", "aac", "flac", "wav", "pcm")
_EXTENSION = {"opus": "ogg"}  # the file extension of a format, where it differs
DEFAULT_VOICE = "alloy"
MAX_INSTRUCTIONS = 4096


class SpeechOutput(BaseModel):
    id: str = Field(description="Media id; the file is the resource media://{id}")
    uri: str
    path: str = Field(description="Where the audio was saved on the server's disk")
    mime_type: str
    bytes: int
    format: str
    voice: str
    duration_s: float | None = Field(description="Measured for wav and pcm; None for compressed formats")
    inline: bool = Field(description="Whether the audio is in this result as an audio block")
    model: str
    provider: str
    characters: int
    cost_usd: float | None
    link: SignedLink | None = absent_when_none("Over HTTP: a signed URL that opens without a key")


class TranscriptionOutput(BaseModel):
    text: str
    language: str | None
    duration_s: float | None = Field(description="The upstream's figure, else measured from the file (wav, pcm)")
    segments: list[Segment] | None = absent_when_none("With timestamps=true: [{start, end, text}]")
    model: str
    provider: str
    cost_usd: float | None


def _choice(value: str | None, offered: list[str] | None, default: str, param: str, card: ModelCard) -> str:
    """`value` (else the card's first offer, else `default`), refused when the card lists offers without it."""
    chosen = value or (offered[0] if offered else default)
    if offered and chosen not in offered:
        raise invalid_argument(param, f"Model '{card.id}' offers {param} {', '.join(offered)}; got '{chosen}'.")
    return chosen


def _cost(card: ModelCard, used: Quantities, reported: float | None) -> float | None:
    if reported is None and not card.pricing.covers(card.kind):
        return 0.0 if card.free else None
    return round(cost(card, used.model_copy(update={"reported_cost_usd": reported})), 6)


def register_speech(mcp: MCPServer[Any], gateway: Gateway) -> None:
    config = gateway.config.media

    @mcp.tool(
        name="generate_speech",
        description=(
            "Turn text into speech. The audio is saved on the server and returned as an audio block (when small "
            "enough), a media:// link and its path. See list_models (kind speech) for voices and formats."
        ),
        annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=True, idempotentHint=False),
    )
    @guarded
    async def generate_speech(
        text: Annotated[str, Field(description="What to say")],
        model: Annotated[str | None, Field(description="Speech model id or alias (see list_models)")] = None,
        voice: Annotated[str | None, Field(description="One of the model's voices")] = None,
        format: Annotated[Format | None, Field(description="mp3, opus, aac, flac, wav or pcm")] = None,
        speed: Annotated[float | None, Field(description="0.25 to 4.0 (1.0: normal)", ge=0.25, le=4.0)] = None,
        instructions: Annotated[OptionalText, Field(description="How to speak: tone, pace, accent")] = None,
    ) -> Annotated[CallToolResult, SpeechOutput]:
        card = gateway.router.resolve(model, "speech")
        if not text.strip():
            raise invalid_argument("text", "`text` is empty: pass what to say.")
        if len(text) > card.max_input_chars:
            raise invalid_argument(
                "text", f"`text` is {len(text)} characters; model '{card.id}' takes at most {card.max_input_chars}."
            )
        if instructions is not None and len(instructions) > MAX_INSTRUCTIONS:
            raise invalid_argument("instructions", f"`instructions` is longer than {MAX_INSTRUCTIONS} characters.")
        chosen_voice = _choice(voice, card.voices, DEFAULT_VOICE, "voice", card)
        chosen_format = _choice(format, card.formats, "mp3", "format", card)

        async def call(route: Route) -> SpeechResult:
            request = SpeechRequest(
                upstream_model=route.card.upstream,
                input=text,
                voice=chosen_voice,
                response_format=chosen_format,
                speed=speed,
                instructions=instructions,
            )
            return await route.adapter.speak(request)

        used = Quantities(characters=len(text))
        caller = identity.current()
        routed = await gateway.router.run(card, call, caller=caller, tool="generate_speech", estimate=used)
        audio = routed.value.audio
        extension = sniff_extension(audio[:16]) or _EXTENSION.get(chosen_format, chosen_format)
        item = await gateway.media.save(audio, routed.card.id, extension)
        link = await publish(
            gateway.store, gateway.links, item, caller=caller.id, tool="generate_speech", model=routed.card.id
        )
        inline = b64_size(len(audio)) <= config.audio_inline_max_bytes
        duration = duration_seconds(audio, extension)
        result = SpeechOutput(
            **item.model_dump(),
            format=chosen_format,
            voice=chosen_voice,
            duration_s=round(duration, 3) if duration is not None else None,
            inline=inline,
            model=routed.card.id,
            provider=routed.provider,
            characters=len(text),
            cost_usd=_cost(routed.card, used, routed.value.cost_usd),
            link=link,
        )
        blocks: list[ContentBlock] = []
        if inline:
            blocks.append(
                AudioContent(type="audio", data=base64.b64encode(audio).decode("ascii"), mime_type=item.mime_type)
            )
        blocks.append(
            resource_link(
                item, link, gateway.links, title="Generated speech", description=f"The audio file, saved at {item.path}"
            )
        )
        length = f", {result.duration_s:g} s" if result.duration_s is not None else ""
        where = "inline and " if inline else f"not inline (over {config.audio_inline_max_bytes} bytes as base64); "
        summary = f"Spoke {len(text)} characters with {routed.card.id} ({chosen_voice}, {chosen_format}{length}): "
        return ok(result, blocks, text=f"{summary}{where}at {item.uri}, saved at {item.path}.")


def register_transcription(mcp: MCPServer[Any], gateway: Gateway) -> None:
    @mcp.tool(
        name="transcribe_audio",
        description=(
            "Transcribe speech in an audio file (base64, data: URL, public URL, media:// id or a file in the "
            "input folder) to text; timestamps=true adds segments with start and end times."
        ),
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=True, idempotentHint=True),
    )
    @guarded
    async def transcribe_audio(
        audio: Annotated[str, Field(description="The audio: WAV, MP3, FLAC, Ogg/Opus or AAC, in any form above")],
        model: Annotated[str | None, Field(description="Transcription model id or alias (see list_models)")] = None,
        language: Annotated[str | None, Field(description="ISO-639-1 code of the speech, e.g. 'en'")] = None,
        prompt: Annotated[OptionalText, Field(description="Text to guide spelling or style")] = None,
        timestamps: Annotated[bool, Field(description="Also return segments with start and end seconds")] = False,
    ) -> Annotated[CallToolResult, TranscriptionOutput]:
        card = gateway.router.resolve(model, "transcription")
        if language is not None and not (2 <= len(language) <= 3 and language.isalpha()):
            raise invalid_argument("language", f"`language` must be an ISO-639-1 code such as 'en'; got '{language}'.")
        loaded = await load_input(gateway, audio, "audio", audio=True)
        measured = duration_seconds(loaded.data, loaded.extension)
        heard = upper_bound_seconds(loaded.data, loaded.extension)

        async def call(route: Route) -> TranscriptionResult:
            request = TranscriptionRequest(
                upstream_model=route.card.upstream,
                audio=as_part(loaded, "audio"),
                language=language,
                prompt=prompt,
                timestamps=timestamps,
            )
            result = await route.adapter.transcribe(request)
            return result.model_copy(update={"audio_seconds": result.stated_duration_s or heard})

        routed = await gateway.router.run(
            card, call, caller=identity.current(), tool="transcribe_audio", estimate=Quantities(audio_seconds=heard)
        )
        value = routed.value
        duration = value.stated_duration_s if value.stated_duration_s is not None else measured
        result = TranscriptionOutput(
            text=value.text,
            language=value.language or language,
            duration_s=round(duration, 3) if duration is not None else None,
            segments=value.segments,
            model=routed.card.id,
            provider=routed.provider,
            cost_usd=_cost(routed.card, Quantities(audio_seconds=value.audio_seconds), None),
        )
        return ok(result, text=value.text)
