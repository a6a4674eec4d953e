"""Probes and metrics: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import logging

import anyio
import msgspec
from imgcore.errors import StorageError
from imgcore.states import RequestStatus
from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from imgapi.problems import ProblemError, problem_responses
from imgapi.runtime import Runtime

__all__ = ["Health", "healthz", "metrics", "readyz"]

PROBE_TIMEOUT = 2.0
#: A storage probe's outcome is reused this long: probes cannot be used to hammer the storage.
STORAGE_PROBE_MAX_AGE = 5.0

log = logging.getLogger("imgapi.health")


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """A probe's answer."""

    status: str


@get(
    "/healthz",
    responses=problem_responses(503),
    summary="Liveness: the process runs and its executor too",
    tags=["operations"],
)
async def healthz(runtime: NamedDependency[Runtime]) -> Health:
    """Up while the executor runs."""
    if runtime.engine is None or not runtime.executor_alive:
        raise ProblemError(503, "the executor is not running", reason="executor_down")
    return Health(status="ok")


@get(
    "/readyz",
    responses=problem_responses(503),
    summary="Readiness: the database answers and the storage can be written",
    tags=["operations"],
)
async def readyz(runtime: NamedDependency[Runtime]) -> Health:
    """Ready when the executor runs, a trivial read succeeds within two seconds, and a probe
    object can be written to the storage and deleted (checked at most every few seconds).

    A read takes no lock: another process holding the SQLite write lock does not delay it.
    """
    engine = runtime.engine
    if engine is None or not runtime.executor_alive:
        raise ProblemError(503, "the executor is not running", reason="executor_down")
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            await engine.database.ping()
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", exc)
        raise ProblemError(
            503, "the database does not answer", reason="database_unavailable"
        ) from None
    try:
        await engine.check_storage(max_age=STORAGE_PROBE_MAX_AGE, probe_seconds=PROBE_TIMEOUT)
    except StorageError as exc:
        # The cause stays in the log: an open probe need not describe the server's disks.
        log.warning("readiness: storage cannot be written: %s", exc)
        raise ProblemError(
            503, "the storage cannot be written", reason="storage_unavailable"
        ) from None
    return Health(status="ready")


@get(
    "/metrics",
    media_type=CONTENT_TYPE_LATEST,
    summary="Prometheus metrics",
    tags=["operations"],
)
async def metrics(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    """Every metric in the Prometheus text format."""
    engine = runtime.engine
    if engine is not None:
        try:
            with anyio.fail_after(PROBE_TIMEOUT):
                for status in RequestStatus:
                    _, count = await engine.list_requests(status=status, limit=0)
                    runtime.metrics.requests.labels(status.value).set(count)
        except Exception as exc:
            # The other metrics are still worth a scrape.
            log.warning("metrics: cannot count requests: %s", exc)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
