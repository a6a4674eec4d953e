"""What a storage holds, read the way each backend keeps it (storage has no listing API)."""

from __future__ import annotations

from imgcore._storage.filesystem import FileStorage
from imgcore.plugin import Storage
from imgcore_example_notifier.storage import MemoryStorage


def stored_keys(storage: Storage, prefix: str = "") -> list[str]:
    """Every key ``storage`` holds that starts with ``prefix``, sorted."""
    if isinstance(storage, FileStorage):
        found = (
            path.relative_to(storage.root).as_posix()
            for path in storage.root.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )
    elif isinstance(storage, MemoryStorage):
        found = iter(storage.objects)
    else:
        raise TypeError(f"cannot list {type(storage).__name__}")
    return sorted(key for key in found if key.startswith(prefix))
