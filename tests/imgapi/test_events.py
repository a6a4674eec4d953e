"""GET /status/{id}/events through the real server: Server-Sent Events of a request's
progress, resumable, private to its client, and cheap when idle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from support.csvgen import make_csv, photo_urls
from support.memory import PeakRss
from support.origin import OriginServer
from support.server import ApiServer, server_env

KEY_A, KEY_B = "events-key-a", "events-key-b"
A = {"X-API-Key": KEY_A}
B = {"X-API-Key": KEY_B}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``imgapi serve`` with two clients, downloading one image at a time."""
    root = tmp_path_factory.mktemp("events")
    env = server_env(root, IMGAPI_API_KEYS=f"{KEY_A},{KEY_B}", IMGCORE_FETCH_CONCURRENCY="1")
    with ApiServer(env=env, cwd=root) as running:
        yield running


def upload(server: ApiServer, urls: list[str], headers: dict[str, str] = A) -> str:
    response = httpx.post(
        server.url("/upload"),
        files={"file": ("p.csv", make_csv([urls]), "text/csv")},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def read_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Every event of an SSE stream until it ends: ``{"event", "id", "data"}``."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in current:
                current["data"] = json.loads(current["data"])
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            current[field] = value
    return events


def stream(server: ApiServer, request_id: str, **headers: str) -> list[dict[str, Any]]:
    with httpx.stream(
        "GET", server.url(f"/status/{request_id}/events"), headers={**A, **headers}, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_events(response)


def wait_ended(server: ApiServer, request_id: str) -> None:
    with httpx.stream(
        "GET", server.url(f"/api/status/{request_id}/events"), headers=A, timeout=60
    ) as response:
        read_events(response)


def test_a_client_sees_every_count_change_in_order_then_the_final_status(
    server: ApiServer, origin: OriginServer
) -> None:
    # One download at a time, 0.6 s each: slower than the server's polls, so no change is
    # folded into the next.
    urls = [origin.url(f"/slow/0.6/img/s03_coffee.jpg?sse{i}") for i in range(5)]
    request_id = upload(server, urls)
    events = stream(server, request_id)
    *progress, final = events
    assert final["event"] == "status"
    assert final["data"]["status"] == "Completed"
    assert (final["data"]["done"], final["data"]["failed"]) == (5, 0)
    assert {e["event"] for e in progress} == {"progress"}
    done = [e["data"]["done"] for e in progress]
    # Every count from the first seen to 5, each once, in order.
    assert done == list(range(done[0], 6))
    assert done[0] <= 1
    assert len({e["id"] for e in events}) == len(events)


def test_an_ended_request_streams_its_state_and_status_then_ends(
    server: ApiServer, origin: OriginServer
) -> None:
    request_id = upload(server, photo_urls(origin, 2, "ended"))
    wait_ended(server, request_id)
    progress, final = stream(server, request_id)
    assert (progress["event"], progress["data"]["done"]) == ("progress", 2)
    assert (final["event"], final["data"]["status"]) == ("status", "Completed")


def test_last_event_id_resumes_without_repeating_the_state_seen(
    server: ApiServer, origin: OriginServer
) -> None:
    request_id = upload(server, photo_urls(origin, 1, "resume"))
    wait_ended(server, request_id)
    progress, _ = stream(server, request_id)
    (final,) = stream(server, request_id, **{"Last-Event-ID": progress["id"]})
    assert final["event"] == "status"
    after_the_end = httpx.get(
        server.url(f"/status/{request_id}/events"), headers={**A, "Last-Event-ID": final["id"]}
    )
    assert after_the_end.status_code == 204  # EventSource stops reconnecting


def test_another_clients_request_has_no_events(server: ApiServer, origin: OriginServer) -> None:
    request_id = upload(server, photo_urls(origin, 1, "theirs"))
    response = httpx.get(server.url(f"/status/{request_id}/events"), headers=B)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    unknown = httpx.get(
        server.url("/status/00000000-0000-0000-0000-000000000000/events"), headers=A
    )
    assert unknown.status_code == 404
    assert httpx.get(server.url(f"/status/{request_id}/events")).status_code == 401


async def _hold_streams(server: ApiServer, request_ids: list[str], count: int) -> int:
    """Open ``count`` streams over ``request_ids``, wait, return how many got their first
    event and stayed open."""
    opened = 0
    ready = anyio.Event()
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=A) as client:

        async def hold(request_id: str) -> None:
            nonlocal opened
            url = server.url(f"/status/{request_id}/events")
            async with client.stream("GET", url) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("event: progress"):
                        opened += 1
                        if opened == count:
                            ready.set()
                        await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(hold, request_ids[i % len(request_ids)])
            with anyio.fail_after(60):
                await ready.wait()
            await anyio.sleep(1)  # a few polls with every stream open
            tg.cancel_scope.cancel()
    return opened


def test_200_idle_streams_cost_the_server_less_than_50_mb(
    tmp_path: Path, origin: OriginServer
) -> None:
    env = server_env(tmp_path, IMGAPI_API_KEYS=KEY_A, IMGCORE_FETCH_CONCURRENCY="1")
    with ApiServer(env=env, cwd=tmp_path) as server:
        # One request downloads for a minute; the others wait behind it: all stay idle.
        urls = [origin.url("/slow/60/img/s03_coffee.jpg")]
        request_ids = [upload(server, urls) for _ in range(20)]
        assert server.process is not None
        with PeakRss(server.process.pid, every=0.05) as rss:
            opened = anyio.run(_hold_streams, server, request_ids, 200)
        assert opened == 200
        print(f"200 idle streams: server RSS grew {rss.growth / 2**20:.1f} MiB")
        assert rss.growth < 50 * 1024 * 1024, f"{rss.growth / 2**20:.1f} MiB for 200 streams"
