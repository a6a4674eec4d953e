"""The Engine façade end to end: SQLite, file storage, the local executor, a real origin."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from imgcore import (
    Config,
    CsvValidationError,
    Engine,
    OutOfRangeError,
    RequestNotFoundError,
    StorageError,
    WebhookURLError,
)
from imgcore._csvio import iter_products
from imgcore.states import ImageStatus, RequestStatus
from support.csvgen import PHOTOS, make_csv, photo_urls
from support.origin import OriginServer
from support.stored import stored_keys

pytestmark = pytest.mark.anyio


def config_for(tmp_path: Path, **changes: Any) -> Config:
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
        public_url="http://127.0.0.1:8000/media",
        fetch_allow=("127.0.0.1/32",),
        fetch_max_attempts=1,
        fetch_read_timeout=5,
        poll_interval=0.05,
        lease_seconds=5,
        max_attempts=3,
        workers=2,
    ).replace(**changes)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(config_for(tmp_path)) as engine:
        yield engine


async def run_until_done(engine: Engine, request_id: Any, timeout: float = 30) -> Any:
    async with engine.running():
        with anyio.fail_after(timeout):
            return await engine.wait(request_id, interval=0.05)


async def test_submit_stores_a_pending_request_with_its_totals(
    engine: Engine, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 5)
    request_id = await engine.submit_csv(make_csv([urls[:3], urls[3:]]), filename="p.csv")
    info = await engine.status(request_id)
    assert info.status is RequestStatus.PENDING
    assert (info.total_products, info.total, info.done, info.failed) == (2, 5, 0, 0)
    assert info.filename == "p.csv"
    products = await engine.products(request_id)
    assert [p.serial for p in products] == [1, 2]
    assert [i.input_url for i in products[0].images] == urls[:3]


async def test_an_invalid_csv_stores_nothing(engine: Engine, origin: OriginServer) -> None:
    good = photo_urls(origin, 1)
    bad = make_csv([good, ["ftp://example.com/x.jpg"]])
    with pytest.raises(CsvValidationError) as caught:
        await engine.submit_csv(bad)
    assert [(i.row, i.reason) for i in caught.value.issues] == [(3, "unsupported_scheme")]
    assert await engine.list_requests() == ([], 0)


async def test_a_large_csv_is_stored_in_batches(engine: Engine) -> None:
    rows = [[f"https://img.example/{r}/{i}.jpg" for i in range(3)] for r in range(5000)]
    request_id = await engine.submit_csv(make_csv(rows))
    info = await engine.status(request_id)
    assert (info.total_products, info.total) == (5000, 15000)
    last = await engine.products(request_id, start=4999, limit=5)
    assert [p.serial for p in last] == [5000]


async def test_processing_completes_and_stores_every_image(
    engine: Engine, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 6)
    request_id = await engine.submit_csv(make_csv([urls[:3], urls[3:]]))
    info = await run_until_done(engine, request_id)
    assert info.status is RequestStatus.COMPLETED
    assert (info.done, info.failed) == (6, 0)
    assert 0 < info.output_bytes < info.input_bytes
    images = [i for p in await engine.products(request_id) for i in p.images]
    assert all(i.status is ImageStatus.DONE for i in images)
    keys = stored_keys(engine.storage)
    # Each done image: its output, and no thumbnail until one is asked for.
    assert keys == sorted(i.storage_key for i in images if i.storage_key)
    assert not any(i.thumbnail_key for i in images)
    assert all(
        i.output_url and i.output_url.startswith("http://127.0.0.1:8000/media/requests/")
        for i in images
    )
    for url in urls:
        assert origin.hits(url.removeprefix(origin.base_url)) == 1


async def test_output_csv_adds_output_urls_in_input_order(
    engine: Engine, origin: OriginServer
) -> None:
    urls = photo_urls(origin, 3)
    missing = origin.url("/status/404")
    request_id = await engine.submit_csv(make_csv([[urls[0], missing, urls[1]], [urls[2]]]))
    info = await run_until_done(engine, request_id)
    assert info.status is RequestStatus.COMPLETED
    assert (info.done, info.failed) == (3, 1)
    data = b"".join([chunk async for chunk in await engine.output_csv(request_id)])
    text = data.decode()
    assert text.splitlines()[0] == "S. No.,Product Name,Input Image Urls,Output Image Urls,Errors"
    products = await engine.products(request_id)
    first = [i.output_url or "" for i in products[0].images]
    assert first[1] == ""
    assert f'"{",".join(first)}"' in text
    assert "2: " in text.splitlines()[1]
    # The output CSV is itself a valid input CSV (its extra columns carried along).
    assert [p.serial for p in iter_products([data])] == [1, 2]


async def test_a_request_whose_images_all_fail_is_failed(
    engine: Engine, origin: OriginServer
) -> None:
    request_id = await engine.submit_csv(
        make_csv([[origin.url("/status/404"), origin.url("/nonimage")]])
    )
    info = await run_until_done(engine, request_id)
    assert info.status is RequestStatus.FAILED
    images = (await engine.products(request_id))[0].images
    assert [i.error_reason for i in images] == ["http_status", "not_an_image"]
    assert stored_keys(engine.storage) == []


async def test_a_truncated_image_fails_with_its_reason(
    engine: Engine, origin: OriginServer
) -> None:
    ok = photo_urls(origin, 1)[0]
    request_id = await engine.submit_csv(
        make_csv([[ok, origin.url("/corpus/special/truncated.jpg")]])
    )
    await run_until_done(engine, request_id)
    images = (await engine.products(request_id))[0].images
    assert images[1].status is ImageStatus.FAILED
    assert images[1].error_reason == "corrupt_image"


async def test_retry_failed_processes_failed_images_again(
    engine: Engine, origin: OriginServer
) -> None:
    state = {"up": False}

    def sometimes(req: Any) -> None:
        body = (origin.corpus / "img" / PHOTOS[0]).read_bytes()
        if state["up"]:
            req.reply(200, body, content_type="image/jpeg")
        else:
            req.reply(404, b"no")

    origin.route("/sometimes.jpg", sometimes)
    request_id = await engine.submit_csv(make_csv([[origin.url("/sometimes.jpg")]]))
    assert (await run_until_done(engine, request_id)).status is RequestStatus.FAILED
    state["up"] = True
    assert await engine.retry_failed(request_id) == 1
    assert (await engine.status(request_id)).status is RequestStatus.IN_PROCESS
    info = await run_until_done(engine, request_id)
    assert (info.status, info.done, info.failed) == (RequestStatus.COMPLETED, 1, 0)


async def test_delete_request_removes_rows_and_files(engine: Engine, origin: OriginServer) -> None:
    request_id = await engine.submit_csv(make_csv([photo_urls(origin, 2)]))
    await run_until_done(engine, request_id)
    assert await engine.delete_request(request_id)
    with pytest.raises(RequestNotFoundError):
        await engine.status(request_id)
    assert stored_keys(engine.storage) == []


async def test_unknown_and_malformed_ids_raise_not_found(engine: Engine) -> None:
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", ""):
        with pytest.raises(RequestNotFoundError):
            await engine.status(bad)
        with pytest.raises(RequestNotFoundError):
            await engine.output_csv(bad)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda e, rid: e.snapshot(rid, start=10**20), "start"),
        (lambda e, rid: e.snapshot(rid, start=-1), "start"),
        (lambda e, rid: e.snapshot(rid, start=2**31 - 10, limit=100), "limit"),
        (lambda e, rid: e.products(rid, start=10**20), "start"),
        (lambda e, rid: e.products(rid, limit=2**63), "limit"),
        (lambda e, rid: e.thumbnail(rid, 10**20), "image_id"),
        (lambda e, rid: e.list_requests(offset=10**20), "offset"),
    ],
)
async def test_numbers_out_of_range_raise_a_clear_error_not_an_overflow(
    engine: Engine, origin: OriginServer, call: Any, name: str
) -> None:
    request_id = await engine.submit_csv(make_csv([photo_urls(origin, 1)]))
    with pytest.raises(OutOfRangeError, match=f"^{name} must be between") as caught:
        await call(engine, request_id)
    assert (caught.value.reason, caught.value.name) == ("out_of_range", name)
    assert isinstance(caught.value, ValueError)


async def test_check_storage_probes_once_per_max_age_and_raises_when_it_cannot_write(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    puts: list[str] = []
    put = engine.storage.put

    async def counting_put(key: str, data: bytes, *, content_type: str) -> None:
        puts.append(key)
        await put(key, data, content_type=content_type)

    monkeypatch.setattr(engine.storage, "put", counting_put)
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(engine.check_storage)
    assert len(puts) == 1 and puts[0].startswith("_probe/")
    assert not [path for path in (tmp_path / "media").rglob("*") if path.is_file()]

    media = tmp_path / "media"
    media.rename(tmp_path / "media.away")
    media.write_bytes(b"not a directory")
    await engine.check_storage()  # the healthy outcome is still fresh
    with pytest.raises(StorageError, match="cannot write"):
        await engine.check_storage(max_age=0)
    with pytest.raises(StorageError):
        await engine.check_storage()  # the failure is reused too
    assert len(puts) == 2


async def test_a_request_failed_on_storage_says_so_in_its_error(
    tmp_path: Path, origin: OriginServer
) -> None:
    (tmp_path / "media").write_bytes(b"not a directory")
    async with Engine(config_for(tmp_path, max_attempts=1)) as engine:
        request_id = await engine.submit_csv(make_csv([photo_urls(origin, 2)]))
        info = await run_until_done(engine, request_id)
    assert info.status is RequestStatus.FAILED
    assert info.error == "2 of 2 images failed: 2 storage_error (the storage could not be written)"


async def test_two_engines_on_one_database_process_each_image_once(
    tmp_path: Path, origin: OriginServer
) -> None:
    config = config_for(tmp_path)
    urls = photo_urls(origin, 24, tag="two")
    async with Engine(config) as first, Engine(config) as second:
        request_id = await first.submit_csv(make_csv([urls[i : i + 4] for i in range(0, 24, 4)]))
        async with first.running(), second.running():
            with anyio.fail_after(30):
                info = await first.wait(request_id, interval=0.05)
    assert (info.status, info.done) == (RequestStatus.COMPLETED, 24)
    for url in urls:
        assert origin.hits(url.removeprefix(origin.base_url)) == 1


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_the_webhook_is_called_once_when_the_request_finishes(
    engine: Engine, origin: OriginServer, receiver: ThreadingHTTPServer
) -> None:
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    request_id = await engine.submit_csv(make_csv([photo_urls(origin, 2)]), webhook_url=hook)
    async with engine.running():
        with anyio.fail_after(20):
            await engine.wait(request_id, interval=0.05)
            while not receiver.received:  # type: ignore[attr-defined]
                await anyio.sleep(0.05)
        await anyio.sleep(0.3)
    received = receiver.received  # type: ignore[attr-defined]
    assert len(received) == 1
    headers, body = received[0]
    payload = msgspec.json.decode(body)
    assert payload["request_id"] == str(request_id)
    assert payload["status"] == "Completed"
    assert payload["data"]["done"] == 2
    assert headers["webhook-id"].startswith("msg_")
    deliveries = await engine.deliveries(request_id)
    assert [(d.status, d.last_status_code) for d in deliveries] == [("delivered", 204)]


async def test_a_webhook_url_outside_the_allow_list_is_refused(engine: Engine) -> None:
    for bad in (
        "http://127.0.0.2:9/hook",
        "ftp://127.0.0.1/x",
        "not a url",
        "http://u:p@127.0.0.1/",
    ):
        with pytest.raises(WebhookURLError):
            await engine.submit_csv(make_csv([["http://127.0.0.1/x.jpg"]]), webhook_url=bad)
    assert await engine.list_requests() == ([], 0)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0x7f000001", "127.1", "0177.0.0.1"])
async def test_a_webhook_url_with_a_legacy_ipv4_spelling_is_refused(
    engine: Engine, host: str
) -> None:
    # 127.0.0.1 is allowed, yet its odd spellings are refused, as for image URLs.
    with pytest.raises(WebhookURLError, match="not a canonical IPv4 address"):
        await engine.submit_csv(
            make_csv([["http://127.0.0.1/x.jpg"]]), webhook_url=f"http://{host}:9/hook"
        )
    assert await engine.list_requests() == ([], 0)


async def test_image_ended_hook_sees_every_image_and_its_errors_are_contained(
    tmp_path: Path, origin: OriginServer
) -> None:
    from imgcore._plugins import create_plugin_manager
    from imgcore.contracts import ImageEnded
    from imgcore.hookspecs import hookimpl

    seen: list[ImageEnded] = []

    class Observer:
        @hookimpl
        def imgcore_image_ended(self, event: ImageEnded) -> Any:
            seen.append(event)

            async def later() -> None:
                raise RuntimeError("an observer's bug must not stop processing")

            return later()

    class Broken:
        @hookimpl
        def imgcore_image_ended(self, event: ImageEnded) -> None:
            raise RuntimeError("neither must a synchronous one")

    pm = create_plugin_manager(environ={}, load_entrypoints=False, extra=[Observer(), Broken()])
    async with Engine(config_for(tmp_path), plugin_manager=pm) as engine:
        urls = [*photo_urls(origin, 2), origin.url("/status/404")]
        request_id = await engine.submit_csv(make_csv([urls]))
        info = await run_until_done(engine, request_id)
    assert (info.status, info.done, info.failed) == (RequestStatus.COMPLETED, 2, 1)
    assert sorted(e.status.value for e in seen) == ["done", "done", "failed"]
    assert all(e.request_id == request_id for e in seen)


async def test_a_slow_upload_holds_no_database_lock(engine: Engine) -> None:
    rows = [[f"https://img.example/{r}/{i}.jpg" for i in range(3)] for r in range(6000)]
    data = make_csv(rows)
    half = anyio.Event()
    resume = anyio.Event()

    async def slow_upload() -> AsyncIterator[bytes]:
        middle = len(data) // 2
        yield data[:middle]
        half.set()
        await resume.wait()
        yield data[middle:]

    async with anyio.create_task_group() as tg:
        results: list[Any] = []

        async def submit_slowly() -> None:
            results.append(await engine.submit_csv(slow_upload()))

        tg.start_soon(submit_slowly)
        await half.wait()
        # Another upload stores (and commits) while the first one is still streaming.
        with anyio.fail_after(5):
            other = await engine.submit_csv(make_csv([["https://img.example/x.jpg"]]))
        assert (await engine.status(other)).total == 1
        resume.set()
    assert (await engine.status(results[0])).total == 18000


async def test_an_upload_that_turns_bad_late_stores_nothing(engine: Engine) -> None:
    rows = [[f"https://img.example/{r}.jpg"] for r in range(5000)]
    data = make_csv(rows) + b"5001,,https://img.example/late.jpg\r\n"
    with pytest.raises(CsvValidationError) as caught:
        await engine.submit_csv(data)
    assert [(i.row, i.reason) for i in caught.value.issues] == [(5002, "empty_name")]
    assert await engine.list_requests() == ([], 0)


@pytest.mark.parametrize("client", ["", "x" * 65])
async def test_a_client_id_outside_1_to_64_characters_is_refused(
    tmp_path: Path, client: str
) -> None:
    async with Engine(_config_for_client_test(tmp_path)) as engine:
        with pytest.raises(ValueError, match="client id"):
            await engine.submit_csv(b"S. No.,Product Name,Input Image Urls\n", client=client)
        assert (await engine.list_requests())[1] == 0


def _config_for_client_test(tmp_path: Path) -> Config:
    return Config(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/imgcore.sqlite3",
        storage_url=f"file://{tmp_path}/media",
    )
