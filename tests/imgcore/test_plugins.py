"""The plugin manager and the hook contract."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pluggy
import pytest
from imgcore import hookspecs
from imgcore._plugins import BUILTIN_PLUGINS, create_plugin_manager, describe_plugins
from imgcore._storage.filesystem import FileStorage
from imgcore.config import Config
from imgcore.hookspecs import hookimpl

HOOKS = [
    name
    for name, value in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("imgcore_")
]


def test_there_are_hooks() -> None:
    assert set(HOOKS) >= {
        "imgcore_storage",
        "imgcore_executor",
        "imgcore_notifiers",
        "imgcore_image_ended",
    }


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_documents_its_contract(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc.split()) >= 15, f"{name} needs a docstring that states its contract"


def test_the_docs_reference_lists_every_hook() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    missing = [name for name in HOOKS if f"- {name}" not in page]
    assert not missing, f"docs/plugins.md's hook reference lacks {missing}"


def test_builtins_register_through_the_hooks() -> None:
    pm = create_plugin_manager(environ={}, load_entrypoints=False)
    names = {info.name for info in describe_plugins(pm)}
    assert names == set(BUILTIN_PLUGINS)
    storage = pm.hook.imgcore_storage(url="file:media", config=Config())
    assert isinstance(storage, FileStorage)
    assert pm.hook.imgcore_storage(url="s3://bucket", config=Config()) is None


def test_describe_lists_each_plugins_hooks() -> None:
    pm = create_plugin_manager(environ={}, load_entrypoints=False)
    by_name = {info.name: info for info in describe_plugins(pm)}
    assert by_name["file"].hooks == ("imgcore_storage",)
    assert by_name["local"].builtin


def test_a_plugin_can_be_disabled_by_environment() -> None:
    pm = create_plugin_manager(
        environ={"IMGCORE_DISABLE_PLUGINS": "webhook"}, load_entrypoints=False
    )
    assert pm.hook.imgcore_notifiers(config=Config()) == []


def test_disabling_an_unknown_plugin_name_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="imgcore.plugins"):
        create_plugin_manager(environ={"IMGCORE_DISABLE_PLUGINS": "webhok"})
    assert "webhok" in caplog.text


def test_builtins_have_imgcores_version_and_no_distribution() -> None:
    from imgcore import __version__

    pm = create_plugin_manager(environ={}, load_entrypoints=False)
    for info in describe_plugins(pm):
        assert (info.version, info.distribution, info.builtin) == (__version__, None, True)


def test_a_misspelt_hook_implementation_fails_at_start() -> None:
    class Typo:
        @hookimpl
        def imgcore_storag(self, url: str, config: Config) -> None:  # the typo is the test
            return None

    with pytest.raises(pluggy.PluginValidationError):
        create_plugin_manager(environ={}, load_entrypoints=False, extra=[Typo()])


def test_an_extra_plugin_wins_for_its_scheme() -> None:
    class Memory:
        @hookimpl(tryfirst=True)
        def imgcore_storage(self, url: str, config: Config) -> object | None:
            return "memory-backend" if url.startswith("mem:") else None

    pm = create_plugin_manager(environ={}, load_entrypoints=False, extra=[Memory()])
    assert pm.hook.imgcore_storage(url="mem:x", config=Config()) == "memory-backend"
    assert isinstance(pm.hook.imgcore_storage(url="file:m", config=Config()), FileStorage)


def test_a_builtin_can_be_disabled_by_its_former_module_name() -> None:
    pm = create_plugin_manager(
        environ={"IMGCORE_DISABLE_PLUGINS": "imgcore.notify.webhook"}, load_entrypoints=False
    )
    assert pm.hook.imgcore_notifiers(config=Config()) == []
