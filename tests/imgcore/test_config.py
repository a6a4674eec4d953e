"""Configuration from IMGCORE_* environment variables."""

from __future__ import annotations

import pytest
from imgcore.config import Config, ConfigError, env_name


def test_defaults_are_the_embedded_setup() -> None:
    config = Config.from_env({})
    assert config.database_url.startswith("sqlite+aiosqlite:///")
    assert config.storage_url == "file:media"
    assert config.quality == 50
    assert config.fetch_allow == ()


def test_values_are_read_and_converted_from_the_environment() -> None:
    config = Config.from_env(
        {
            "IMGCORE_QUALITY": "70",
            "IMGCORE_OPTIMIZE": "true",
            "IMGCORE_FETCH_ALLOW": "127.0.0.0/8, ::1,",
            "IMGCORE_LEASE_SECONDS": "2.5",
        }
    )
    assert (config.quality, config.optimize, config.lease_seconds) == (70, True, 2.5)
    assert config.fetch_allow == ("127.0.0.0/8", "::1")


def test_an_invalid_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="IMGCORE_QUALITY"):
        Config.from_env({"IMGCORE_QUALITY": "700"})
    with pytest.raises(ConfigError, match="IMGCORE_OUTPUT_FORMAT"):
        Config.from_env({"IMGCORE_OUTPUT_FORMAT": "GIF"})


def test_overrides_win_over_the_environment() -> None:
    assert Config.from_env({"IMGCORE_QUALITY": "70"}, quality=80).quality == 80


def test_every_field_is_documented() -> None:
    import msgspec

    info = msgspec.inspect.type_info(Config)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        assert isinstance(field.type, msgspec.inspect.Metadata), env_name(field.name)
        schema = field.type.extra_json_schema or {}
        assert len(schema.get("description", "")) > 10, env_name(field.name)


def test_option_structs_follow_the_config() -> None:
    config = Config(quality=60, max_width=800, fetch_allow=("127.0.0.1",), csv_max_rows=10)
    assert config.compress_options().quality == 60
    assert config.compress_options().max_width == 800
    assert config.compress_options().max_height is None
    assert config.fetch_options().allow == ("127.0.0.1",)
    assert config.csv_limits().max_rows == 10
