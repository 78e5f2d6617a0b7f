"""Settings from TOML (``bot/config.py``): defaults, validation errors that name the key, secrets from the
environment only."""

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, discord_token, load_settings, parse_settings

EXAMPLE = Path(__file__).parents[2] / "config.example.toml"


def test_example_config_is_valid_and_matches_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def test_empty_file_gives_defaults() -> None:
    settings = parse_settings("")
    assert settings.model.id == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert settings.discord.api_base_url == "https://discord.com/api/v10"
    assert settings.discord.gateway_url == "wss://gateway.discord.gg"
    assert settings.storage.output_dir is None


def test_sizes_table_array() -> None:
    settings = parse_settings('[[generation.sizes]]\nname = "tiny"\nwidth = 64\nheight = 96\n')
    assert [(s.name, s.width, s.height) for s in settings.generation.sizes] == [("tiny", 64, 96)]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[model]\ndtype = "fp8"', "model.dtype"),
        ("[model]\nidd = 1", "model.idd"),
        ("[nope]\nx = 1", "nope"),
        ('[generation]\nmax_steps = "many"', "generation.max_steps"),
        ("[generation]\nmax_steps = 1000", "generation.max_steps"),
        ("[generation]\ndefault_steps = 0", "generation.default_steps"),
        ("[generation]\ndefault_guidance = 99.0", "generation.default_guidance"),
        ("[discord]\nsync_commands = 1", "discord.sync_commands"),
        ('[discord]\napi_base_url = "discord.com"', "discord.api_base_url"),
        ('[discord]\ngateway_url = "http://x"', "discord.gateway_url"),
        ("[discord]\nprogress_interval = 0.01", "discord.progress_interval"),
        ('[model]\ndevice = "tpu"', "model.device"),
        ('[model]\nscheduler = "rm -rf"', "model.scheduler"),
        ('[[generation.sizes]]\nname = "x"\nwidth = 65\nheight = 64', "generation.sizes[0].width"),
        ('[[generation.sizes]]\nname = "x"\nwidth = 64', "generation.sizes[0]"),
        ("[refine]\nsuggestions = [1]", "refine.suggestions[0]"),
        ('[refine]\nsuggestions = ["a", "b", "c", "d", "e"]', "refine.suggestions"),
        ('[logging]\nlevel = "LOUD"', "logging.level"),
        ("model = 3", "model"),
        ('[executor]\nbackend = "celery"', "executor.backend"),
        ('[redis]\nurl = "localhost:6379"', "redis.url"),
        ('[redis]\nprefix = "has space"', "redis.prefix"),
        ("[redis]\nclaim_idle = 0.1", "redis.claim_idle"),
        ("[redis]\nmax_deliveries = 0", "redis.max_deliveries"),
        ("[redis]\nresult_ttl = 5", "redis.result_ttl"),
        ("[redis]\ntls_ca_file = 3", "redis.tls_ca_file"),
    ],
)
def test_bad_values_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(text)
    assert str(info.value).startswith(key), str(info.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_settings("[model\nid=")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.toml")


def test_token_only_from_environment() -> None:
    assert discord_token({"DISCORD_TOKEN": " abc.def "}) == "abc.def"
    with pytest.raises(ConfigError, match="DISCORD_TOKEN") as info:
        discord_token({})
    assert "abc" not in str(info.value)


def test_redis_url_from_the_environment_wins() -> None:
    settings = parse_settings('[executor]\nbackend = "redis"\n[redis]\nurl = "redis://file:6379/0"\ntls_ca_file = ""')
    assert settings.redis.tls_ca_file is None
    assert settings.redis.resolved_url({}) == "redis://file:6379/0"
    assert settings.redis.resolved_url({"SEEDGRID_REDIS_URL": "rediss://u:p@env:6380/1"}) == "rediss://u:p@env:6380/1"
    with pytest.raises(ConfigError, match="SEEDGRID_REDIS_URL"):
        settings.redis.resolved_url({"SEEDGRID_REDIS_URL": "http://nope"})
    assert settings.redis.heartbeat == settings.redis.claim_idle / 5
