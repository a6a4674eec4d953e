"""Settings from IMGAPI_* and IMGCORE_* variables."""

from __future__ import annotations

import msgspec
import pytest
from imgapi.settings import Settings
from imgcore.config import ConfigError


def test_defaults_are_the_embedded_setup() -> None:
    settings = Settings.from_env({})
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.api_keys == ()
    assert settings.max_upload_bytes == 100_000_000
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.core.database_url == "sqlite+aiosqlite:///imgcore.sqlite3"
    assert settings.core.storage_url == "file:media"


def test_variables_are_read_and_converted() -> None:
    settings = Settings.from_env(
        {
            "IMGAPI_API_KEYS": " one, two ,,",
            "IMGAPI_MAX_UPLOAD_BYTES": "1234",
            "IMGAPI_PORT": "9000",
            "IMGAPI_SESSION_SECRET": "s3cret",
            "IMGCORE_QUALITY": "70",
        }
    )
    assert settings.api_keys == ("one", "two")
    assert (settings.max_upload_bytes, settings.port) == (1234, 9000)
    assert settings.session_secret == "s3cret"
    assert settings.core.quality == 70


def test_imgcore_urls_follow_the_public_url() -> None:
    settings = Settings.from_env({"IMGAPI_PUBLIC_URL": "https://img.example.org/"})
    assert settings.core.public_url == "https://img.example.org/media"
    assert settings.core.api_url == "https://img.example.org"


def test_explicit_imgcore_urls_win() -> None:
    settings = Settings.from_env(
        {
            "IMGAPI_PUBLIC_URL": "https://img.example.org",
            "IMGCORE_PUBLIC_URL": "https://cdn.example.org/i",
            "IMGCORE_API_URL": "https://api.example.org",
        }
    )
    assert settings.core.public_url == "https://cdn.example.org/i"
    assert settings.core.api_url == "https://api.example.org"


def test_an_invalid_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="IMGAPI_MAX_UPLOAD_BYTES"):
        Settings.from_env({"IMGAPI_MAX_UPLOAD_BYTES": "0"})


def test_every_setting_is_documented() -> None:
    properties = msgspec.json.schema(Settings)["$defs"]["Settings"]["properties"]
    assert set(properties) == set(Settings.__struct_fields__)
    for name, prop in properties.items():
        assert prop.get("description"), name
