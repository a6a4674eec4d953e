"""What the app holds while it runs: settings, metrics, the Engine and its executor's health.

The app's lifespan opens the Engine and runs its executor in a background task; on shutdown
it cancels the executor (which gives unfinished images back to the queue) and closes the
Engine. Should the executor stop by itself, the health probes say so (503).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskStatus
from imgcore.engine import Engine
from litestar import Litestar
from litestar.datastructures import State

from imgapi.metrics import ImageMetricsPlugin, Metrics
from imgapi.problems import ProblemError
from imgapi.progress import ProgressHub
from imgapi.settings import Settings

__all__ = ["Runtime", "provide_engine", "provide_runtime", "run_engine"]

log = logging.getLogger("imgapi.runtime")


class Runtime:
    """The app's live parts, kept in ``app.state.runtime``."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.api_keys = tuple(key.encode() for key in settings.api_keys)
        self.engine: Engine | None = None
        #: Feeds the live progress streams (GET /status/{id}/events).
        self.progress = ProgressHub()
        #: True while the executor runs; False before start, after a crash and at shutdown.
        self.executor_alive = False

    def require_engine(self) -> Engine:
        """The running Engine; 503 outside the lifespan."""
        if self.engine is None:
            raise ProblemError(503, "the engine is not running", reason="not_running")
        return self.engine


def provide_runtime(state: State) -> Runtime:
    """Dependency: the app's :class:`Runtime`."""
    runtime: Runtime = state.runtime
    return runtime


def provide_engine(state: State) -> Engine:
    """Dependency: the running :class:`Engine`."""
    return provide_runtime(state).require_engine()


@asynccontextmanager
async def run_engine(app: Litestar) -> AsyncIterator[None]:
    """Lifespan: open the Engine, run its executor in the background, close both at the end."""
    runtime = provide_runtime(app.state)
    async with Engine(runtime.settings.core) as engine:
        engine.pm.register(ImageMetricsPlugin(runtime.metrics))
        async with anyio.create_task_group() as tg:
            await tg.start(_execute, engine, runtime)
            tg.start_soon(runtime.progress.run, engine)
            runtime.engine = engine
            # What exists now (modules, the app, the engine) lives as long as the process.
            # Frozen, it is left out of the collector's full passes, each of which walked it all
            # again and stalled the event loop (docs/performance.md, "Status under load").
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()
                runtime.engine = None
                tg.cancel_scope.cancel()
    await _reap_stuck_sqlite_closes()
    log.info("engine closed")


_STUCK_CLOSE = "AsyncAdapt_aiosqlite_connection._terminate_graceful_close"


async def _reap_stuck_sqlite_closes() -> None:
    """Cancel SQLAlchemy's leftover aiosqlite close tasks, which would hang the loop's end.

    When anyio cancels a query on an aiosqlite connection (as stopping the executor does),
    SQLAlchemy 2.1 invalidates the connection: it shields a graceful close in a new task,
    is cancelled again, and force-closes, which stops aiosqlite's worker thread before the
    graceful close has queued its work. That task then waits forever and survives the single
    cancel that ``asyncio.run`` gives leftover tasks, so the process never exits.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # not on asyncio (trio): not affected

    for _ in range(5):
        stuck = [
            task
            for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "") == _STUCK_CLOSE
        ]
        if not stuck:
            return
        for task in stuck:
            task.cancel()
        await asyncio.sleep(0)


async def _execute(
    engine: Engine, runtime: Runtime, *, task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
) -> None:
    started = False
    try:
        async with engine.running():
            runtime.executor_alive = started = True
            log.info("executor %r running as %s", engine.config.executor, engine.owner)
            task_status.started()
            await anyio.sleep_forever()
    except Exception:
        if not started:
            raise  # the app does not start
        # The API can still answer status calls; the probes report the executor as down.
        log.exception("the executor stopped")
    finally:
        runtime.executor_alive = False
