"""The example third-party plugin: installed, found through its entry point, used unchanged.

Nothing here registers the plugin by hand: imgcore loads it from the ``imgcore`` entry point
of the installed ``imgcore-example-notifier`` distribution, as it would any plugin.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from imgcore import Engine
from imgcore._plugins import create_plugin_manager, describe_plugins
from imgcore.config import Config
from imgcore.plugin import Storage
from imgcore.states import RequestStatus
from imgcore_example_notifier import LOG_ENV, JsonLinesNotifier, MemoryStorage
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import core_config
from support.stored import stored_keys

pytestmark = pytest.mark.anyio

VERSION = importlib.metadata.version("imgcore-example-notifier")


@pytest.fixture
def store_name() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    MemoryStorage.forget(name)


def imgcore_cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "imgcore.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_the_plugin_is_registered_under_its_entry_point_name() -> None:
    pm = create_plugin_manager(environ={})
    plugin = pm.get_plugin("example")
    assert plugin is not None
    assert plugin.__name__ == "imgcore_example_notifier.plugin"


def test_describe_plugins_reports_its_distribution_version_and_hooks() -> None:
    infos = {info.name: info for info in describe_plugins(create_plugin_manager(environ={}))}
    example = infos["example"]
    assert (example.distribution, example.version) == ("imgcore-example-notifier", VERSION)
    assert example.hooks == ("imgcore_notifiers", "imgcore_storage")
    assert not example.builtin


def test_imgcore_plugins_lists_it() -> None:
    lines = imgcore_cli("plugins", env={"IMGCORE_DISABLE_PLUGINS": ""}).splitlines()
    assert f"example {VERSION}: imgcore_notifiers, imgcore_storage" in lines


def test_disabling_it_by_its_entry_point_name_keeps_it_out() -> None:
    pm = create_plugin_manager(environ={"IMGCORE_DISABLE_PLUGINS": "example"})
    assert pm.get_plugin("example") is None
    assert pm.hook.imgcore_storage(url="memory://x", config=Config()) is None
    assert "example" not in {info.name for info in describe_plugins(pm)}


def test_its_storage_serves_memory_urls(store_name: str) -> None:
    pm = create_plugin_manager(environ={})
    storage = pm.hook.imgcore_storage(url=f"memory://{store_name}", config=Config())
    assert isinstance(storage, MemoryStorage)
    assert isinstance(storage, Storage)


def test_its_notifier_loads_only_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = create_plugin_manager(environ={})
    monkeypatch.delenv(LOG_ENV, raising=False)
    assert not any(
        isinstance(n, JsonLinesNotifier)
        for notifiers in pm.hook.imgcore_notifiers(config=Config())
        for n in notifiers
    )
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "log.jsonl"))
    assert any(
        isinstance(n, JsonLinesNotifier)
        for notifiers in pm.hook.imgcore_notifiers(config=Config())
        for n in notifiers
    )


async def test_memory_storage_keeps_objects_per_name(store_name: str) -> None:
    storage = MemoryStorage.from_url(f"memory://{store_name}")
    await storage.put("requests/r/1.jpg", b"one", content_type="image/jpeg")
    await storage.put("requests/r/2.jpg", b"two", content_type="image/webp")
    await storage.put("requests/r/2.jpg", b"TWO", content_type="image/webp")
    again = MemoryStorage.from_url(f"memory://{store_name}/")
    assert await again.get("requests/r/2.jpg") == b"TWO"
    assert again.content_type("requests/r/2.jpg") == "image/webp"
    assert stored_keys(again, "requests/r/1") == ["requests/r/1.jpg"]
    await again.delete("requests/r/1.jpg")
    await again.delete("requests/r/1.jpg")
    with pytest.raises(KeyError):
        await storage.get("requests/r/1.jpg")
    assert storage.url_for("requests/r/2.jpg") == f"memory://{store_name}/requests/r/2.jpg"


async def test_a_request_is_stored_and_logged_by_the_plugin(
    tmp_path: Path, origin: OriginServer, monkeypatch: pytest.MonkeyPatch, store_name: str
) -> None:
    log = tmp_path / "finished.jsonl"
    monkeypatch.setenv(LOG_ENV, str(log))
    config = core_config(tmp_path, storage_url=f"memory://{store_name}", compress_pool="thread")
    async with Engine(config) as engine:
        request_id = await engine.submit_csv(make_csv([photo_urls(origin, 3)]))
        async with engine.running():
            with anyio.fail_after(30):
                info = await engine.wait(request_id, interval=0.05)
                while not (await engine.deliveries(request_id))[0].delivered_at:
                    await anyio.sleep(0.05)
        images = [
            image for product in await engine.products(request_id) for image in product.images
        ]
        deliveries = await engine.deliveries(request_id)

    assert info.status is RequestStatus.COMPLETED
    stored = MemoryStorage(store_name)
    keys = {image.storage_key for image in images} | {image.thumbnail_key for image in images}
    assert sorted(stored.objects) == sorted(key for key in keys if key)
    for image in images:
        assert image.storage_key is not None
        assert image.output_url == f"memory://{store_name}/{image.storage_key}"
        assert (await stored.get(image.storage_key))[:2] == b"\xff\xd8"
    (line,) = log.read_bytes().splitlines()
    entry = msgspec.json.decode(line)
    assert entry["request_id"] == str(request_id)
    assert (entry["status"], entry["total"], entry["done"], entry["failed"]) == (
        "Completed",
        3,
        3,
        0,
    )
    assert [(d.notifier, d.status, d.message_id) for d in deliveries] == [
        ("example-jsonl", "delivered", entry["message_id"])
    ]
