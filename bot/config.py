"""Settings: a TOML file → typed, validated, frozen dataclasses.

Every key is declared once, in the dataclasses below; the loader walks them, so an unknown
key, a wrong type or an out-of-range value stops start-up with a message that names the key
(``model.dtype: expected one of auto, float16, bfloat16, float32, got 'fp8'``).
The Discord token never lives here: it comes from the ``DISCORD_TOKEN`` environment variable.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

TOKEN_ENV = "DISCORD_TOKEN"
DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

MAX_UPSCALER_STEPS = 500
MAX_UPSCALER_GUIDANCE = 50
"""The bounds ``[upscale] steps`` and ``guidance`` accept, which a recipe's upscaler call must keep to."""


class ConfigError(ValueError):
    """A setting is missing, unknown, of the wrong type or out of range. The message names the key."""


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def _check_scheme(url: str, schemes: tuple[str, ...], key: str) -> None:
    """``url`` must start with ``scheme://`` for one of ``schemes``; the message lists them."""
    prefixes = [f"{scheme}://" for scheme in schemes]
    listed = f"{', '.join(prefixes[:-1])} or {prefixes[-1]}" if len(prefixes) > 1 else prefixes[0]
    _check(url.startswith(tuple(prefixes)), key, f"must start with {listed}")


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    api_base_url: str = "https://discord.com/api/v10"
    """REST endpoint; point it at a Discord-compatible proxy (nirn-proxy) or a test fake."""
    gateway_url: str = "wss://gateway.discord.gg"
    """Gateway WebSocket endpoint."""
    sync_commands: bool = True
    """Register the slash commands with Discord at start-up."""
    progress_interval: float = 2.0
    """Seconds between progress edits of one message (Discord rate-limits edits)."""
    delivery_retry_for: float = 900.0
    """Seconds to keep retrying a finished job's post while Discord answers 5xx or the connection fails."""

    def validate(self, key: str) -> None:
        _check_scheme(self.api_base_url, ("http", "https"), f"{key}.api_base_url")
        _check_scheme(self.gateway_url, ("ws", "wss"), f"{key}.gateway_url")
        _check(0.5 <= self.progress_interval <= 60, f"{key}.progress_interval", "must be in 0.5..60 seconds")
        _check(1 <= self.delivery_retry_for <= 86400, f"{key}.delivery_retry_for", "must be in 1..86400 seconds")


DEVICES = ("auto", "cuda", "cpu", "mps")
DTYPES = ("auto", "float16", "bfloat16", "float32")
ATTENTION = ("sdpa", "classic")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = ("inductor", "cudagraphs", "aot_eager", "eager")
QUANTIZE = ("", "fp8")


def cuda_index(device: str) -> int | None:
    """The N of ``cuda:N`` (0 for plain ``cuda``); None when ``device`` names no CUDA device."""
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    return None if match is None else int(match[1] or 0)


def check_device(device: str) -> str | None:
    """What is wrong with a device setting (``model.device``, ``worker --device``), or None: it is one of
    :data:`DEVICES` or ``cuda:N``. Whether torch sees that device is only known when the model loads."""
    if device in DEVICES or cuda_index(device) is not None:
        return None
    return f"expected one of {', '.join(DEVICES)} or cuda:N, got {device!r}"


@dataclass(frozen=True, slots=True)
class ModelSettings:
    id: str = DEFAULT_MODEL
    """A Hugging Face Hub id or a local folder written by ``save_pretrained``."""
    device: str = "auto"
    """auto | cuda | cuda:N | cpu | mps. auto picks cuda, then mps, then cpu."""
    dtype: str = "auto"
    """auto (float16 on cuda/mps, float32 on cpu) | float16 | bfloat16 | float32."""
    scheduler: str = ""
    """A diffusers scheduler class name (e.g. EulerAncestralDiscreteScheduler); empty keeps the model's own."""
    cpu_offload: bool = False
    """enable_model_cpu_offload(): fits small GPUs at some speed cost (cuda only)."""
    attention: str = "sdpa"
    """sdpa (torch's fused scaled-dot-product attention) | classic (diffusers' plain attention, for debugging)."""
    channels_last: bool | None = None
    """UNet and VAE in channels-last memory format; unset: on with ``compile`` only (eagerly it may cost more)."""
    fuse_qkv: bool = True
    """Fuse each attention's query/key/value projections into one matmul."""
    compile: bool = False
    """torch.compile the UNet and VAE decoder; start-up then warms up (minutes) so no member pays for it."""
    compile_mode: str = "max-autotune-no-cudagraphs"
    """torch.compile mode: default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs."""
    compile_backend: str = "inductor"
    """torch.compile backend: inductor (generates fused kernels) | cudagraphs | aot_eager | eager (capture only)."""
    compile_cache: str = ""
    """A folder for inductor's compiled kernels, so a restart reuses them (a Docker volume); empty: torch's default."""
    quantize: str = ""
    """"" (off) | fp8: torchao float8 dynamic quantization of the denoiser's linear layers, per-row (Ada/Hopper)."""
    memory_budget: float = 0.0
    """GiB of weights a device keeps loaded (least recently used unloaded first); 0: one model at a time."""

    def validate(self, key: str) -> None:
        _check(bool(self.id.strip()), f"{key}.id", "must not be empty")
        if (problem := check_device(self.device)) is not None:
            raise ConfigError(f"{key}.device: {problem}")
        _check(self.dtype in DTYPES, f"{key}.dtype", f"expected one of {', '.join(DTYPES)}, got {self.dtype!r}")
        _check(self.attention in ATTENTION, f"{key}.attention", f"expected one of {', '.join(ATTENTION)}")
        _check(
            self.compile_backend in COMPILE_BACKENDS,
            f"{key}.compile_backend",
            f"expected one of {', '.join(COMPILE_BACKENDS)}",
        )
        _check(self.compile_mode in COMPILE_MODES, f"{key}.compile_mode", f"expected one of {', '.join(COMPILE_MODES)}")
        _check(self.quantize in QUANTIZE, f"{key}.quantize", f'expected "" (off) or "fp8", got {self.quantize!r}')
        _check(0 <= self.memory_budget <= 10_000, f"{key}.memory_budget", "must be in 0..10000 GiB (0 = one model)")
        _check(
            self.scheduler == "" or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*Scheduler", self.scheduler) is not None,
            f"{key}.scheduler",
            f"expected a diffusers scheduler class name such as EulerDiscreteScheduler, got {self.scheduler!r}",
        )


@dataclass(frozen=True, slots=True)
class Size:
    name: str
    width: int
    height: int

    @property
    def label(self) -> str:
        return f"{self.name} ({self.width}×{self.height})"

    def validate(self, key: str) -> None:
        _check(
            re.fullmatch(r"[a-z0-9_-]{1,25}", self.name) is not None,
            f"{key}.name",
            f"must be 1-25 lowercase letters, digits, '-' or '_', got {self.name!r}",
        )
        for dim in ("width", "height"):
            value = getattr(self, dim)
            _check(
                64 <= value <= 2048 and value % 8 == 0,
                f"{key}.{dim}",
                f"must be a multiple of 8 in 64..2048, got {value}",
            )


def _default_sizes() -> tuple[Size, ...]:
    return (Size("square", 512, 512), Size("portrait", 512, 768), Size("landscape", 768, 512))


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    default_steps: int | None = None
    """Steps when a member gives none; unset: each model's own (its family's preset or ``[[models]] steps``)."""
    min_steps: int = 1
    max_steps: int = 50
    default_guidance: float | None = None
    """Guidance when a member gives none; unset: each model's own (its family's preset or ``[[models]] guidance``)."""
    min_guidance: float = 0.0
    max_guidance: float = 20.0
    sizes: tuple[Size, ...] = ()
    """The size choices of /imagine, the first the default; empty: each model's family sizes (or its own)."""
    default_negative: str = ""
    """Negative prompt used when a member gives none."""

    def validate(self, key: str) -> None:
        self._check_range(key, "steps", 1, 500)
        self._check_range(key, "guidance", 0, 50)
        check_choices(self.sizes, f"{key}.sizes")

    def _check_range(self, key: str, name: str, floor: float, ceiling: float) -> None:
        """``min_<name> <= default_<name> <= max_<name>``, all within ``floor..ceiling``."""
        low, default, high = (getattr(self, f"{bound}_{name}") for bound in ("min", "default", "max"))
        _check(
            floor <= low <= high <= ceiling,
            f"{key}.max_{name}",
            f"need {floor} <= min_{name} <= max_{name} <= {ceiling}, got {low}..{high}",
        )
        _check(
            default is None or low <= default <= high,
            f"{key}.default_{name}",
            f"must be in min_{name}..max_{name} ({low}..{high}), got {default}",
        )


class _Choice(Protocol):
    """A named entry members pick from a Discord choice list (a size, a model)."""

    @property
    def name(self) -> str: ...

    def validate(self, key: str) -> None: ...


def check_choices(items: tuple[_Choice, ...], key: str) -> None:
    """At most 25 entries (Discord's choice limit), unique names, each valid; empty is allowed."""
    _check(len(items) <= 25, key, "at most 25 entries (Discord's choice limit)")
    names = [item.name for item in items]
    _check(len(set(names)) == len(names), key, f"names must be unique, got {names}")
    for i, item in enumerate(items):
        item.validate(f"{key}[{i}]")


MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One ``[[models]]`` entry: a model members can pick, with what it changes of its family's preset.

    Unset values fall back to ``[generation]`` (when set there), then to the family's preset; the
    device and speed options are ``[model]``'s, shared by every model.
    """

    name: str
    """What members pick and see: 1-32 lowercase letters, digits, ``-``, ``_`` or ``.``."""
    id: str
    """A Hugging Face Hub id or a local folder written by ``save_pretrained``."""
    steps: int | None = None
    guidance: float | None = None
    min_guidance: float | None = None
    max_guidance: float | None = None
    negative: str | None = None
    """The negative prompt when a member gives none (default: ``[generation] default_negative``)."""
    sizes: tuple[Size, ...] = ()
    """This model's size choices (default: ``[generation] sizes``, else its family's)."""
    dtype: str = ""
    """Overrides ``[model] dtype`` for this model."""
    cpu_offload: bool | None = None
    """Overrides ``[model] cpu_offload`` for this model."""
    scheduler: str = ""
    """Overrides ``[model] scheduler`` for this model."""

    def validate(self, key: str) -> None:
        _check(
            MODEL_NAME.fullmatch(self.name) is not None,
            f"{key}.name",
            f"must be 1-32 lowercase letters, digits, '-', '_' or '.', got {self.name!r}",
        )
        _check(bool(self.id.strip()), f"{key}.id", "must not be empty")
        _check(self.steps is None or 1 <= self.steps <= 500, f"{key}.steps", "must be in 1..500")
        for name in ("guidance", "min_guidance", "max_guidance"):
            value = getattr(self, name)
            _check(value is None or 0 <= value <= 50, f"{key}.{name}", "must be in 0..50")
        _check(self.dtype == "" or self.dtype in DTYPES, f"{key}.dtype", f"expected one of {', '.join(DTYPES)}")
        check_choices(self.sizes, f"{key}.sizes")
        ModelSettings(id=self.id, scheduler=self.scheduler).validate(key)  # the same rules as [model]

    def settings(self, shared: ModelSettings) -> ModelSettings:
        """The load settings of this model: ``[model]``'s, with this entry's id and overrides."""
        return dataclasses.replace(
            shared,
            id=self.id,
            dtype=self.dtype or shared.dtype,
            cpu_offload=shared.cpu_offload if self.cpu_offload is None else self.cpu_offload,
            scheduler=self.scheduler or shared.scheduler,
        )


def shorthand_name(model_id: str) -> str:
    """A member-facing name for the one model of ``[model] id``: the last part of the id, made valid."""
    last = re.split(r"[/\\]", model_id.rstrip("/\\"))[-1].lower()
    name = re.sub(r"[^a-z0-9_.-]+", "-", last).strip("-_.")[:32]
    return name if name and MODEL_NAME.fullmatch(name) else "default"


def _default_suggestions() -> tuple[str, ...]:
    return (", highly realistic", ", artsy", ", trending", ", colorful")


@dataclass(frozen=True, slots=True)
class RefineSettings:
    suggestions: tuple[str, ...] = field(default_factory=_default_suggestions)
    """Pre-filled lines of the refine modal, one suffix per line (at most 4)."""
    max_suffix_length: int = 200
    """Longest suffix a member may type (characters)."""

    def validate(self, key: str) -> None:
        _check(len(self.suggestions) <= 4, f"{key}.suggestions", "at most 4 lines (one tile each)")
        for i, s in enumerate(self.suggestions):
            _check(
                "\n" not in s and 0 < len(s.strip()) <= self.max_suffix_length,
                f"{key}.suggestions[{i}]",
                "must be one non-empty line no longer than max_suffix_length",
            )
        _check(1 <= self.max_suffix_length <= 900, f"{key}.max_suffix_length", "must be in 1..900")


@dataclass(frozen=True, slots=True)
class UpscaleSettings:
    factor: float = 2.0
    """U1-U4: the upscale's width and height as a multiple of the tile's (1.25 to 4)."""
    strength: float = 0.35
    """How much of the enlarged tile the image-to-image ("hires") pass redraws (0.05 to 1)."""
    max_side: int = 2048
    """The longest side an upscale may have, in pixels; a larger one is refused, saying so."""
    model: str = ""
    """A dedicated upscaler instead of the hires pass: a Hub id or local folder of a diffusers
    StableDiffusionUpscalePipeline (×4, e.g. stabilityai/stable-diffusion-x4-upscaler) or
    StableDiffusionLatentUpscalePipeline (×2); its own factor replaces ``factor``. Empty: the hires pass."""
    steps: int = 75
    """The upscaler's denoising steps (1 to 500; diffusers' default 75). Only with ``model``."""
    guidance: float = 9.0
    """The upscaler's guidance scale (0 to 50; diffusers' default 9). Only with ``model``."""
    noise_level: int = 20
    """The noise the ×4 upscaler adds to the tile before redrawing it (0 to 350; diffusers' default 20)."""

    def validate(self, key: str) -> None:
        _check(1.25 <= self.factor <= 4, f"{key}.factor", "must be in 1.25..4")
        _check(0.05 <= self.strength <= 1, f"{key}.strength", "must be in 0.05..1")
        _check(64 <= self.max_side <= 8192, f"{key}.max_side", "must be in 64..8192")
        _check(
            self.model == self.model.strip(),
            f"{key}.model",
            f'expected a Hub id or a folder without surrounding spaces ("" for the hires pass), got {self.model!r}',
        )
        _check(1 <= self.steps <= MAX_UPSCALER_STEPS, f"{key}.steps", f"must be in 1..{MAX_UPSCALER_STEPS}")
        _check(0 <= self.guidance <= MAX_UPSCALER_GUIDANCE, f"{key}.guidance", f"must be in 0..{MAX_UPSCALER_GUIDANCE}")
        _check(0 <= self.noise_level <= 350, f"{key}.noise_level", "must be in 0..350")


@dataclass(frozen=True, slots=True)
class VarySettings:
    subtle: float = 0.4
    """Vary (subtle): the image-to-image strength, how much of the tile is redrawn (0.05 to 1)."""
    strong: float = 0.75
    """Vary (strong): the same, higher."""

    def validate(self, key: str) -> None:
        _check(0.05 <= self.subtle <= 1, f"{key}.subtle", "must be in 0.05..1")
        _check(0.05 <= self.strong <= 1, f"{key}.strong", "must be in 0.05..1")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    database: Path = Path("seedgrid.db")
    """SQLite file for jobs and tiles (created on first start; relative to the working directory)."""
    output_dir: Path | None = None
    """When set, every grid and tile is also saved here with its parameters (JSON)."""

    def validate(self, key: str) -> None:
        _check(str(self.database) != "", f"{key}.database", "must not be empty")


BACKENDS = ("local", "redis")


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    per_user_limit: int = 3
    """Jobs one member may have waiting or running at once; more are refused with a message."""
    queue_limit: int = 50
    """Jobs waiting or running in total; more are refused with a message."""
    job_timeout: float = 300.0
    """Seconds one job may run before it is stopped and reported."""
    preview_every: int = 5
    """Show a rough preview of the tiles every N steps while a job runs (0 = off)."""
    shutdown_timeout: float = 30.0
    """On SIGTERM: seconds to let the running job finish before it is stopped and kept for the next start."""
    backend: str = "local"
    """Where jobs run: local (this process, on model.device) | redis (GPU workers through Redis, see [redis])."""

    def validate(self, key: str) -> None:
        _check(self.backend in BACKENDS, f"{key}.backend", f"expected one of {', '.join(BACKENDS)}")
        _check(1 <= self.per_user_limit <= 100, f"{key}.per_user_limit", "must be in 1..100")
        _check(1 <= self.queue_limit <= 10_000, f"{key}.queue_limit", "must be in 1..10000")
        _check(self.per_user_limit <= self.queue_limit, f"{key}.per_user_limit", "must not be larger than queue_limit")
        _check(1 <= self.job_timeout <= 24 * 3600, f"{key}.job_timeout", "must be in 1..86400 seconds")
        _check(0 <= self.preview_every <= 1000, f"{key}.preview_every", "must be in 0..1000 steps (0 = off)")
        _check(0 <= self.shutdown_timeout <= 3600, f"{key}.shutdown_timeout", "must be in 0..3600 seconds")


POLICIES = ("allow", "blur", "spoiler")


@dataclass(frozen=True, slots=True)
class SafetySettings:
    checker: bool = True
    """Run the model's safety checker when it has one (SD 1.x does)."""
    flagged: str = "blur"
    """Outside NSFW channels, a flagged tile is: blur (a blurred placeholder) | spoiler (the grid as a spoiler)."""
    nsfw_channels: str = "allow"
    """In channels marked NSFW: allow | blur | spoiler."""
    blocklist: tuple[str, ...] = ()
    """Words (matched as whole words) or "re:<regular expression>", case-insensitive, Unicode-normalized."""
    classifier: str = "Falconsai/nsfw_image_detection"
    """For models without a safety checker: an image-classification model (Hub id or folder); empty: none."""
    classifier_labels: tuple[str, ...] = ("nsfw",)
    """The classifier's labels that mean "flag it" (their scores are summed)."""
    classifier_threshold: float = 0.5
    """A tile is flagged when the summed score of those labels reaches this."""

    def validate(self, key: str) -> None:
        _check(self.flagged in ("blur", "spoiler"), f"{key}.flagged", "expected blur or spoiler")
        _check(
            bool(self.classifier_labels) and all(label.strip() for label in self.classifier_labels),
            f"{key}.classifier_labels",
            "needs at least one non-empty label",
        )
        _check(0 < self.classifier_threshold <= 1, f"{key}.classifier_threshold", "must be in (0, 1]")
        _check(self.nsfw_channels in POLICIES, f"{key}.nsfw_channels", f"expected one of {', '.join(POLICIES)}")
        for i, entry in enumerate(self.blocklist):
            _check(bool(entry.strip()), f"{key}.blocklist[{i}]", "must not be empty")
            if entry.startswith("re:"):
                try:
                    re.compile(entry[3:])
                except re.error as exc:
                    raise ConfigError(f"{key}.blocklist[{i}]: not a valid regular expression: {exc}") from None


REFINE_WHO = ("anyone", "author")


@dataclass(frozen=True, slots=True)
class AccessSettings:
    guilds: tuple[int, ...] = ()
    """Server ids where the bot works (empty = every server it is in)."""
    channels: tuple[int, ...] = ()
    """Channel ids where /imagine works (empty = every channel)."""
    roles: tuple[int, ...] = ()
    """Members need one of these role ids (empty = everyone)."""
    direct_messages: bool = False
    """Offer /imagine in direct messages with the bot."""
    refine: str = "anyone"
    """Who may press a grid's tile and re-roll buttons: anyone | author."""
    rate_burst: int = 5
    """Jobs a member may start in a burst (token bucket size)."""
    rate_per_minute: float = 6.0
    """How fast the bucket refills, in jobs per minute."""

    def validate(self, key: str) -> None:
        _check(self.refine in REFINE_WHO, f"{key}.refine", "expected anyone or author")
        _check(1 <= self.rate_burst <= 1000, f"{key}.rate_burst", "must be in 1..1000")
        _check(0 < self.rate_per_minute <= 10_000, f"{key}.rate_per_minute", "must be in (0, 10000]")
        for name in ("guilds", "channels", "roles"):
            for i, value in enumerate(getattr(self, name)):
                _check(0 < value < 2**64, f"{key}.{name}[{i}]", "must be a Discord id (a positive integer)")


REDIS_URL_ENV = "SEEDGRID_REDIS_URL"
REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = "redis://localhost:6379/0"
    """redis://[[user]:password@]host:port/db, rediss:// for TLS, unix:///path/to/socket; SEEDGRID_REDIS_URL wins."""
    prefix: str = "seedgrid"
    """Every key and stream this bot uses starts with this (one prefix per bot sharing a Redis)."""
    tls_ca_file: Path | None = None
    """For rediss://: the CA certificate that signed the server's (empty = the system's CAs)."""
    claim_idle: float = 30.0
    """Seconds a running job may go without its worker's heartbeat before another worker takes it over."""
    max_deliveries: int = 3
    """A job handed to this many workers that all died goes to the dead-letter stream; the member is told."""
    result_ttl: float = 3600.0
    """Seconds images and progress events stay in Redis (the bot normally reads them within a second)."""

    @property
    def heartbeat(self) -> float:
        """How often a worker proves it is alive (and its job is still being worked on)."""
        return self.claim_idle / 5

    def validate(self, key: str) -> None:
        _check_scheme(self.url, REDIS_SCHEMES, f"{key}.url")
        _check(
            re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.prefix) is not None,
            f"{key}.prefix",
            "must be 1-64 letters, digits, _ . : -",
        )
        _check(1 <= self.claim_idle <= 3600, f"{key}.claim_idle", "must be in 1..3600 seconds")
        _check(1 <= self.max_deliveries <= 100, f"{key}.max_deliveries", "must be in 1..100")
        _check(60 <= self.result_ttl <= 7 * 86400, f"{key}.result_ttl", "must be in 60..604800 seconds")

    def resolved_url(self, environ: typing.Mapping[str, str] | None = None) -> str:
        """The URL to connect to: ``SEEDGRID_REDIS_URL`` when set (keeps a password out of the file), else ``url``."""
        env = os.environ if environ is None else environ
        url = env.get(REDIS_URL_ENV, "").strip() or self.url
        _check_scheme(url, REDIS_SCHEMES, REDIS_URL_ENV)
        return url


METRICS_LISTEN_ENV = "SEEDGRID_METRICS_LISTEN"


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6 address]:port`` for IPv6) → ``(host, port)``; ``ValueError`` says what is wrong."""
    match = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})", listen.strip())
    if match is None:
        raise ValueError(f"expected host:port such as 127.0.0.1:9400 (or [::1]:9400), got {listen!r}")
    port = int(match[3])
    if port > 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    return match[1] or match[2], port


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    listen: str = ""
    """host:port of /metrics, /healthz and /readyz (e.g. 127.0.0.1:9400); empty = SEEDGRID_METRICS_LISTEN if set
    (the Docker image sets it), else off: no port opened. ``seedgrid worker --metrics`` wins for a worker."""
    health_timeout: float = 5.0
    """/healthz and /readyz fail when the event loop takes longer than this to answer (seconds)."""

    def validate(self, key: str) -> None:
        if self.listen:
            try:
                parse_listen(self.listen)
            except ValueError as exc:
                raise ConfigError(f"{key}.listen: {exc}") from None
        _check(0.1 <= self.health_timeout <= 60, f"{key}.health_timeout", "must be in 0.1..60 seconds")

    def resolved_listen(self, environ: typing.Mapping[str, str] | None = None) -> str:
        """Where to listen: ``listen``, else ``SEEDGRID_METRICS_LISTEN``; empty means off."""
        env = os.environ if environ is None else environ
        listen = self.listen or env.get(METRICS_LISTEN_ENV, "").strip()
        if listen and not self.listen:
            try:
                parse_listen(listen)
            except ValueError as exc:
                raise ConfigError(f"{METRICS_LISTEN_ENV}: {exc}") from None
        return listen


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "text"
    """text | json (one JSON object a line, with the job id on every line about a job)."""

    def validate(self, key: str) -> None:
        _check(self.level in LOG_LEVELS, f"{key}.level", f"expected one of {', '.join(LOG_LEVELS)}")
        _check(self.format in LOG_FORMATS, f"{key}.format", f"expected one of {', '.join(LOG_FORMATS)}")


@dataclass(frozen=True, slots=True)
class Settings:
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    models: tuple[ModelEntry, ...] = ()
    """The models members can pick (``[[models]]``), the first the default; empty: ``[model] id`` alone."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    refine: RefineSettings = field(default_factory=RefineSettings)
    upscale: UpscaleSettings = field(default_factory=UpscaleSettings)
    vary: VarySettings = field(default_factory=VarySettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    safety: SafetySettings = field(default_factory=SafetySettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "models":
                getattr(self, f.name).validate(f.name)
        check_choices(self.models, "models")
        _check(
            not self.models or self.model.id == DEFAULT_MODEL,
            "model.id",
            "set either [model] id (one model) or [[models]] entries (several), not both",
        )

    @property
    def model_entries(self) -> tuple[ModelEntry, ...]:
        """The configured models, the default first: ``[[models]]``, or the one of ``[model] id``."""
        return self.models or (ModelEntry(name=shorthand_name(self.model.id), id=self.model.id),)


# --- loading -------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, args[0], key)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        item = typing.get_args(tp)[0]
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return _build(tp, value, key)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp in (str, Path):
        ok = isinstance(value, str)
        value = Path(value) if ok and tp is Path else value
    else:  # pragma: no cover - a new field type without a converter is a programming error
        raise TypeError(f"no converter for {tp!r}")
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _build(cls: Any, table: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(names))})")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in table and _required(f)]
    if missing:
        where = f"{prefix}: " if prefix else ""
        raise ConfigError(f"{where}missing key {', '.join(missing)}")
    kwargs: dict[str, Any] = {}
    for name, value in table.items():
        where = f"{prefix}.{name}" if prefix else name
        if name in ("output_dir", "tls_ca_file") and value == "":
            kwargs[name] = None  # an empty string means "none"
            continue
        kwargs[name] = _convert(value, hints[name], where)
    return cls(**kwargs)


def parse_settings(text: str, *, source: str = "<config>") -> Settings:
    """Parse and validate TOML text. Raises :class:`ConfigError` naming the offending key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    settings: Settings = _build(Settings, data, "")
    settings.validate()
    return settings


def load_settings(path: Path) -> Settings:
    """Read and validate a config file (blocking; call it before the event loop starts)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return parse_settings(text, source=str(path))


def discord_token(environ: typing.Mapping[str, str] | None = None) -> str:
    """The bot token from ``DISCORD_TOKEN``; never logged, never part of an error message."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(f"{TOKEN_ENV}: the bot token must be set in this environment variable")
    return token
