"""Shared fixtures: a tiny random Stable Diffusion model, test configs, and the fake Discord.

The model is built once per session with ``save_pretrained`` and always loaded through the
bot's own loader (``Engine.open`` → ``Pipeline.load``), the same code path a Hub id takes.
"""

from __future__ import annotations

import os

# No test reaches the Hugging Face Hub (every model is built locally): a model id that is not a folder
# fails at once instead of after huggingface_hub's retries. Set before anything imports huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.config import Settings, parse_settings
from bot.engine import Engine
from tests.redis_server import RedisServer, running_redis
from tests.tiny_model import build_tiny_pipeline
from tests.tiny_upscaler import build_tiny_upscaler

TEST_TOKEN = "MTEST.fake-token.seedgrid-never-log-me"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "model")


@pytest.fixture(scope="session")
def tiny_upscaler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ×4 ``StableDiffusionUpscalePipeline`` folder (``[upscale] model``)."""
    return build_tiny_upscaler(tmp_path_factory.mktemp("tiny-upscaler") / "upscaler")


def config_text(
    model: Path | None,
    database: Path,
    *,
    api_base_url: str = "https://discord.com/api/v10",
    gateway_url: str = "wss://gateway.discord.gg",
    output_dir: Path | None = None,
    per_user_limit: int = 20,
    preview_every: int = 2,
    shutdown_timeout: float = 5.0,
    extra: str = "",
) -> str:
    """A complete config file for tests: tiny sizes, few steps, fast progress edits.

    ``model`` None: ``extra`` names the models (``[[models]]`` entries). Unless ``extra`` has an
    ``[access]`` section, the per-member rate limit is lifted: tests that
    send many commands as one member are about other things. Unless it names a ``classifier``, the
    NSFW classifier is off (its default is a Hub id).
    """
    if "[access]" not in extra:
        extra += "\n[access]\nrate_burst = 1000\nrate_per_minute = 10000.0\n"
    if "classifier" not in extra:  # the default NSFW classifier is a Hub download: tests that want one build it
        extra = (
            extra.replace("[safety]\n", '[safety]\nclassifier = ""\n')
            if "[safety]" in extra
            else (extra + '\n[safety]\nclassifier = ""\n')
        )
    return f"""
[discord]
api_base_url = "{api_base_url}"
gateway_url = "{gateway_url}"
progress_interval = 0.5

[model]
{f'id = "{model}"' if model is not None else "# the models are [[models]] entries (in extra)"}
device = "cpu"

[generation]
default_steps = 2
min_steps = 1
max_steps = 50

[[generation.sizes]]
name = "small"
width = 64
height = 64

[[generation.sizes]]
name = "wide"
width = 96
height = 64

[[generation.sizes]]
name = "large"
width = 256
height = 256

[[generation.sizes]]
name = "huge"
width = 512
height = 512

[storage]
database = "{database}"
output_dir = "{output_dir or ""}"

[executor]
per_user_limit = {per_user_limit}
queue_limit = 100
preview_every = {preview_every}
shutdown_timeout = {shutdown_timeout}
{extra}
"""


@pytest.fixture(scope="session")
def settings(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return parse_settings(config_text(tiny_model, tmp_path_factory.mktemp("state") / "seedgrid.db"))


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    """One loaded tiny model for the whole session (loading is the slow part)."""
    engine = await Engine.open(settings)
    yield engine
    await engine.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (skips, saying why, when the binary is missing)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def redis_extra(url: str, prefix: str, *, claim_idle: float = 1.0, max_deliveries: int = 3) -> str:
    """The config lines (for ``config_text(extra=...)``) that switch the backend to Redis."""
    return f"""backend = "redis"

[redis]
url = "{url}"
prefix = "{prefix}"
claim_idle = {claim_idle}
max_deliveries = {max_deliveries}
"""
