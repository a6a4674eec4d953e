"""Every imgcore hook. Each docstring is the contract a plugin implements.

Plugins register under the entry-point group ``imgcore`` and are named after their entry
point; imgcore's own backends (file storage, the webhook notifier, the local executor, the
Pillow codec) register through these same hooks. Hooks are plain (synchronous) calls made while an
:class:`~imgcore.engine.Engine` is built, unless their contract says otherwise; a hook may
return an awaitable where its contract says so, and imgcore awaits it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from imgcore.config import Config
    from imgcore.contracts import CodecSpec, Executor, ImageEnded, Notifier, Storage, Work

PROJECT = "imgcore"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]


@hookspec(firstresult=True)
def imgcore_storage(url: str, config: Config) -> Storage | None:
    """Return a storage backend for ``url`` if this plugin handles its scheme, else ``None``.

    ``url`` is the configured ``IMGCORE_STORAGE_URL`` (``file:media``, ``s3://bucket/prefix``…).
    Called once per Engine; the first plugin that returns a backend wins, so return ``None``
    quickly, without I/O, for any scheme that is not yours. Raise
    :class:`imgcore.config.ConfigError` for a URL of your scheme that cannot work.

    The backend implements :class:`imgcore._storage.Storage`: ``put`` is atomic and replaces
    (images are re-processed after a crash), ``get`` raises ``KeyError`` for a missing key,
    failures raise :class:`imgcore._storage.StorageError` with ``transient`` telling whether
    the image should be tried again, ``url_for`` is synchronous and cheap (it runs for every
    image listed in a status or output CSV) and ``aclose`` is called when the Engine closes.
    Settings of your own come from environment variables named after your plugin.
    """


@hookspec(firstresult=True)
def imgcore_executor(name: str, work: Work, config: Config) -> Executor | None:
    """Return the executor called ``name`` if this plugin provides it, else ``None``.

    ``name`` is the configured ``IMGCORE_EXECUTOR`` (``local``, ``saq``…). Called once per
    Engine; return ``None`` quickly, without I/O, for any other name. The executor implements
    :class:`imgcore.contracts.Executor` and does all its work through ``work``
    (:class:`imgcore.contracts.Work`): it claims images there (leases, renewed while they
    run), processes each with ``work.process`` and gives back what it has not finished when
    it stops. The database stays the truth about every image's status, so the executor may
    be killed at any moment. ``config`` is imgcore's configuration, for settings of its own.
    """


@hookspec
def imgcore_notifiers(config: Config) -> list[Notifier]:  # type: ignore[empty-body]
    """Return the notifiers this plugin adds (may be empty, e.g. when it is not configured).

    Called once per Engine. Each notifier implements :class:`imgcore._notify.Notifier` and
    has a ``name`` unique among loaded notifiers and stable across versions (it is stored).
    When a request reaches ``Completed`` or ``Failed``, each notifier is asked (its
    ``target`` method) whether it wants to hear about it; every yes is recorded as a
    delivery in the database, in the same transaction as the status change, with the
    ``payload`` it returns. ``deliver`` is then called at least once per delivery, from any
    process running the Engine and across restarts, until it reports success or
    ``retry_delay`` gives up; each attempt is listed by ``Engine.deliveries``. A notifier's
    optional ``aclose`` is awaited when delivery stops.
    """


@hookspec
def imgcore_image_ended(event: ImageEnded) -> Awaitable[None] | None:
    """Called once each time an image ends (done or failed), after it is stored.

    May return an awaitable, which is awaited. Errors are logged and ignored: this hook
    observes processing, it cannot change it. Keep it fast; it runs on the worker.
    """


@hookspec
def imgcore_migrations() -> list[Path]:  # type: ignore[empty-body]
    """Return Alembic version directories holding this plugin's own tables' migrations.

    For a plugin (or an application such as imgapi) that keeps tables of its own in imgcore's
    database. Each directory is an independent Alembic branch beside imgcore's: its first
    revision has ``down_revision = None`` and a ``branch_labels`` naming the plugin, and
    revision ids must be unique across every branch. The migrations run in imgcore's Alembic
    environment, on the connection imgcore hands over, in the same transaction as imgcore's.
    ``imgcore db upgrade`` (and, on SQLite, starting an Engine) brings every branch to its
    head; on PostgreSQL and MariaDB/MySQL an Engine refuses to start until every branch is
    at its head. Called whenever a :class:`imgcore.Database` is created for an
    Engine or the CLI; return the same directories every time, without I/O.
    """


@hookspec
def imgcore_codecs() -> list[CodecSpec]:  # type: ignore[empty-body]
    """Return the codecs this plugin adds, as :class:`imgcore.contracts.CodecSpec` (may be empty).

    Called when an Engine (or ``imgcore process``) is built and by ``imgcore plugins``; do no
    I/O and do not load the codec's library here. ``IMGCORE_CODEC`` picks a codec by its
    ``name``, which must be unique among installed plugins; when it is empty, the codec of
    highest ``rank`` is used. An image whose input format the chosen codec does not decode,
    or whose output format it does not encode, goes to the next codec by rank that does
    (the built-in ``pillow`` codec decodes every allowed format).

    ``factory`` builds the :class:`imgcore.contracts.Codec` once in each compression worker
    process, so it must pickle by reference: a module-level class or function. The codec
    keeps every rule of the :class:`~imgcore.contracts.Codec` contract and raises only the
    image errors of :mod:`imgcore.errors`. A crash in it (a segfault on a hostile file)
    kills only its worker: that image fails with reason ``worker_crashed`` and the pool is
    rebuilt.
    """
