"""Every query (imgcore._db.requests, images, outbox) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
import sqlalchemy as sa
from imgcore._db import images as images_db
from imgcore._db import outbox
from imgcore._db import requests as requests_db
from imgcore._db.images import ImageResult
from imgcore._db.tables import deliveries, images, products, requests
from imgcore.contracts import Claim, DeliveryClaim, Settlement
from imgcore.models import RequestInfo
from imgcore.states import ImageStatus, RequestStatus
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import NOW, Submit, product_rows, reader

pytestmark = pytest.mark.anyio

LEASE = timedelta(minutes=5)
HEADER = {"columns": ["S. No.", "Product Name", "Input Image Urls"]}


def done(index: int = 0, *, input_bytes: int = 1000, output_bytes: int = 400) -> ImageResult:
    return ImageResult(
        status=ImageStatus.DONE,
        storage_key=f"out/{index}.jpg",
        input_bytes=input_bytes,
        output_bytes=output_bytes,
        input_width=640,
        input_height=480,
        output_width=640,
        output_height=480,
        input_format="JPEG",
        output_format="JPEG",
    )


FAILED = ImageResult(status=ImageStatus.FAILED, error_reason="http_status", error="HTTP 404")


async def claim(
    engine: AsyncEngine, owner: str = "w1", *, limit: int = 100, now: datetime = NOW
) -> list[Claim]:
    async with engine.begin() as conn:
        return await conn.run_sync(
            images_db.claim_images, owner=owner, limit=limit, lease=LEASE, now=now
        )


async def finish(
    engine: AsyncEngine,
    claimed: Claim,
    result: ImageResult,
    *,
    owner: str = "w1",
    now: datetime = NOW,
) -> tuple[bool, Settlement | None]:
    async with engine.begin() as conn:
        return await conn.run_sync(
            images_db.finish_image, claimed, owner=owner, result=result, now=now
        )


async def info(engine: AsyncEngine, request_id: UUID) -> RequestInfo:
    async with reader(engine).connect() as conn:
        found = await conn.run_sync(requests_db.read_request, request_id)
    assert found is not None
    return found


async def image_rows(engine: AsyncEngine, request_id: UUID) -> list[Any]:
    async with reader(engine).connect() as conn:
        result = await conn.execute(
            sa.select(images)
            .where(images.c.request_id == request_id)
            .order_by(images.c.product_position, images.c.position)
        )
        return list(result.all())


async def count_rows(engine: AsyncEngine, table: sa.Table, request_id: UUID) -> int:
    column = table.c.id if table is requests else table.c.request_id
    async with reader(engine).connect() as conn:
        result = await conn.execute(
            sa.select(sa.func.count()).select_from(table).where(column == request_id)
        )
        return int(result.scalar_one())


# -- submitting --------------------------------------------------------------------------------


async def test_submit_in_batches_stores_a_pending_request_with_totals(engine: AsyncEngine) -> None:
    request_id = uuid4()
    rows = product_rows([2, 1, 3, 0, 1])
    async with engine.begin() as conn:
        await conn.run_sync(
            requests_db.create_request,
            request_id=request_id,
            header=HEADER,
            filename="catalogue.csv",
            webhook_url="http://127.0.0.1:9/hook",
            now=NOW,
        )
        added = await conn.run_sync(requests_db.add_products, request_id, rows[:2], now=NOW)
        added += await conn.run_sync(requests_db.add_products, request_id, rows[2:], now=NOW)
        await conn.run_sync(
            requests_db.set_request_totals, request_id, total_products=5, total_images=added
        )

    stored = await info(engine, request_id)
    assert added == 7
    assert (stored.status, stored.total_products, stored.total) == (RequestStatus.PENDING, 5, 7)
    assert (stored.done, stored.failed, stored.input_bytes, stored.output_bytes) == (0, 0, 0, 0)
    assert (stored.filename, stored.webhook_url) == ("catalogue.csv", "http://127.0.0.1:9/hook")
    assert stored.columns == ("S. No.", "Product Name", "Input Image Urls")
    assert stored.finished_at is None


async def test_submitted_images_are_pending_and_due_now(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([2, 1])

    rows = await image_rows(engine, request_id)
    assert [(r.product_position, r.position) for r in rows] == [(0, 0), (0, 1), (1, 0)]
    assert {r.status for r in rows} == {"pending"}
    assert {r.attempts for r in rows} == {0}
    assert {r.available_at for r in rows} == {NOW}
    assert {r.lease_owner for r in rows} == {None}


async def test_add_products_without_rows_adds_nothing(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([])

    async with engine.begin() as conn:
        assert await conn.run_sync(requests_db.add_products, request_id, [], now=NOW) == 0
    assert await count_rows(engine, products, request_id) == 0


async def test_rolled_back_submit_leaves_nothing(engine: AsyncEngine) -> None:
    request_id = uuid4()

    class Abort(Exception):
        pass

    async def submit_then_abort() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(
                requests_db.create_request,
                request_id=request_id,
                header=HEADER,
                filename=None,
                webhook_url=None,
                now=NOW,
            )
            await conn.run_sync(requests_db.add_products, request_id, product_rows([2, 2]), now=NOW)
            raise Abort

    with pytest.raises(Abort):
        await submit_then_abort()

    async with reader(engine).connect() as conn:
        assert await conn.run_sync(requests_db.read_request, request_id) is None
    for table in (requests, products, images):
        assert await count_rows(engine, table, request_id) == 0


async def test_header_round_trips_as_json(engine: AsyncEngine) -> None:
    request_id = uuid4()
    header = {"columns": ["Serial Number", "Product Name", "Input Image Urls", "Prix €"], "n": 3}
    async with engine.begin() as conn:
        await conn.run_sync(
            requests_db.create_request,
            request_id=request_id,
            header=header,
            filename=None,
            webhook_url=None,
            now=NOW,
        )

    async with reader(engine).connect() as conn:
        assert await conn.run_sync(requests_db.get_header, request_id) == header


async def test_unknown_request_has_no_header_and_no_info(engine: AsyncEngine) -> None:
    async with reader(engine).connect() as conn:
        assert await conn.run_sync(requests_db.get_header, uuid4()) is None
        assert await conn.run_sync(requests_db.read_request, uuid4()) is None


async def test_product_text_and_extra_columns_round_trip_unicode(engine: AsyncEngine) -> None:
    request_id = uuid4()
    async with engine.begin() as conn:
        await conn.run_sync(
            requests_db.create_request,
            request_id=request_id,
            header=HEADER,
            filename=None,
            webhook_url=None,
            now=NOW,
        )
        await conn.run_sync(
            requests_db.add_products,
            request_id,
            [(0, 2, 7, "Café ☕ 日本 👟", ["http://127.0.0.1/ü.jpg"], ["ß", "€ 9,99"])],
            now=NOW,
        )

    async with reader(engine).connect() as conn:
        [product] = await conn.run_sync(
            requests_db.read_product_page, request_id, start=0, limit=10
        )
    assert (product.name, product.extra) == ("Café ☕ 日本 👟", ("ß", "€ 9,99"))
    assert product.images[0].input_url == "http://127.0.0.1/ü.jpg"


# -- claiming ------------------------------------------------------------------------------------


async def test_claim_leases_images_as_processing(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([2])

    claims = await claim(engine, "w1")

    assert {c.request_id for c in claims} == {request_id}
    rows = await image_rows(engine, request_id)
    assert [c.id for c in claims] == [r.id for r in rows]
    assert {r.status for r in rows} == {"processing"}
    assert {r.lease_owner for r in rows} == {"w1"}
    assert {r.available_at for r in rows} == {NOW + LEASE}
    assert {r.started_at for r in rows} == {NOW}


async def test_claim_moves_the_request_to_in_process(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([2])

    await claim(engine, limit=1)

    stored = await info(engine, request_id)
    assert stored.status is RequestStatus.IN_PROCESS
    assert stored.updated_at == NOW


async def test_claim_counts_the_attempt(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1])

    [claimed] = await claim(engine)

    assert claimed.attempts == 1
    assert [r.attempts for r in await image_rows(engine, request_id)] == [1]


async def test_claim_takes_at_most_limit_oldest_first(engine: AsyncEngine, submit: Submit) -> None:
    older = await submit([2], now=NOW - timedelta(seconds=1))
    newer = await submit([2])

    claims = await claim(engine, limit=3)

    assert [c.request_id for c in claims] == [older, older, newer]


async def test_claimed_images_are_not_claimed_again_while_leased(
    engine: AsyncEngine, submit: Submit
) -> None:
    await submit([3])
    await claim(engine, "w1")

    assert await claim(engine, "w2", now=NOW + LEASE - timedelta(microseconds=1)) == []


async def test_image_with_expired_lease_is_claimable_by_another_worker(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [first] = await claim(engine, "w1")

    [second] = await claim(engine, "w2", now=NOW + LEASE)

    assert (second.id, second.attempts) == (first.id, 2)
    [row] = await image_rows(engine, request_id)
    assert (row.lease_owner, row.available_at) == ("w2", NOW + 2 * LEASE)
    assert row.started_at == NOW


async def test_image_not_yet_due_is_not_claimed(engine: AsyncEngine, submit: Submit) -> None:
    await submit([1], now=NOW + timedelta(seconds=1))

    assert await claim(engine, now=NOW) == []


async def test_renew_leases_extends_only_the_owners_images(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([2])
    mine = await claim(engine, "w1", limit=1)
    theirs = await claim(engine, "w2", limit=1)
    until = NOW + 2 * LEASE

    async with engine.begin() as conn:
        held = await conn.run_sync(
            images_db.renew_leases, owner="w1", ids=[mine[0].id, theirs[0].id], until=until
        )

    assert held == 1
    leases = {r.id: (r.lease_owner, r.available_at) for r in await image_rows(engine, request_id)}
    assert leases == {mine[0].id: ("w1", until), theirs[0].id: ("w2", NOW + LEASE)}


async def test_renew_leases_counts_a_lease_renewed_to_the_same_time(
    engine: AsyncEngine, submit: Submit
) -> None:
    # MySQL reports changed rows, not matched ones, unless the driver asks for FOUND_ROWS.
    await submit([1])
    [claimed] = await claim(engine)

    async with engine.begin() as conn:
        held = await conn.run_sync(
            images_db.renew_leases, owner="w1", ids=[claimed.id], until=NOW + LEASE
        )

    assert held == 1


async def test_renew_leases_of_nothing_holds_nothing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await conn.run_sync(images_db.renew_leases, owner="w1", ids=[], until=NOW) == 0


# -- finishing -----------------------------------------------------------------------------------


async def test_finish_done_stores_the_result_and_counts_bytes(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([2])
    first, _ = await claim(engine)

    ended, settlement = await finish(engine, first, done(0), now=NOW + timedelta(seconds=1))

    assert (ended, settlement) == (True, None)
    stored = await info(engine, request_id)
    assert (stored.done, stored.failed) == (1, 0)
    assert (stored.input_bytes, stored.output_bytes) == (1000, 400)
    row = (await image_rows(engine, request_id))[0]
    assert (row.status, row.lease_owner, row.storage_key) == ("done", None, "out/0.jpg")
    assert (row.output_width, row.output_height, row.output_format) == (640, 480, "JPEG")
    assert row.finished_at == NOW + timedelta(seconds=1)


async def test_finish_failed_stores_the_reason_and_counts_a_failure(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([2])
    first, _ = await claim(engine)

    assert await finish(engine, first, FAILED) == (True, None)

    stored = await info(engine, request_id)
    assert (stored.done, stored.failed, stored.input_bytes) == (0, 1, 0)
    row = (await image_rows(engine, request_id))[0]
    assert (row.status, row.error_reason, row.error) == ("failed", "http_status", "HTTP 404")


async def test_finish_after_losing_the_lease_changes_nothing(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [lost] = await claim(engine, "w1")
    await claim(engine, "w2", now=NOW + LEASE)

    assert await finish(engine, lost, done(), owner="w1") == (False, None)

    stored = await info(engine, request_id)
    assert (stored.status, stored.done, stored.failed) == (RequestStatus.IN_PROCESS, 0, 0)
    [row] = await image_rows(engine, request_id)
    assert (row.status, row.lease_owner, row.storage_key) == ("processing", "w2", None)


async def test_finishing_an_image_twice_counts_it_once(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([2])
    first, _ = await claim(engine)
    await finish(engine, first, done())

    assert await finish(engine, first, done()) == (False, None)
    assert (await info(engine, request_id)).done == 1


async def test_finish_refuses_a_non_terminal_status(engine: AsyncEngine, submit: Submit) -> None:
    await submit([1])
    [claimed] = await claim(engine)

    with pytest.raises(ValueError, match="not a terminal image status"):
        await finish(engine, claimed, ImageResult(status=ImageStatus.PENDING))


async def test_last_image_settles_the_request_completed_exactly_once(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([2, 1], webhook_url="http://127.0.0.1:9/hook")
    claims = await claim(engine)
    later = NOW + timedelta(seconds=3)

    results = [
        await finish(engine, claims[0], done(0)),
        await finish(engine, claims[1], FAILED),
        await finish(engine, claims[2], done(2), now=later),
    ]

    assert [r[1] for r in results[:2]] == [None, None]
    assert results[2] == (
        True,
        Settlement(
            request_id=request_id,
            status=RequestStatus.COMPLETED,
            webhook_url="http://127.0.0.1:9/hook",
            total=3,
            done=2,
            failed=1,
        ),
    )
    stored = await info(engine, request_id)
    assert (stored.status, stored.finished_at, stored.updated_at) == (
        RequestStatus.COMPLETED,
        later,
        later,
    )


async def test_request_whose_images_all_failed_settles_failed(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1, 1])
    first, second = await claim(engine)

    await finish(engine, first, FAILED)
    _, settlement = await finish(engine, second, FAILED)

    assert settlement is not None
    assert (settlement.status, settlement.done, settlement.failed) == (RequestStatus.FAILED, 0, 2)
    assert (await info(engine, request_id)).status is RequestStatus.FAILED


async def test_settled_request_stays_settled_after_a_late_duplicate_finish(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [claimed] = await claim(engine)
    await finish(engine, claimed, done())

    assert await finish(engine, claimed, FAILED) == (False, None)
    stored = await info(engine, request_id)
    assert (stored.status, stored.done, stored.failed) == (RequestStatus.COMPLETED, 1, 0)


# -- deferring, releasing, retrying --------------------------------------------------------------


async def test_deferred_image_is_pending_until_its_time(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [claimed] = await claim(engine)
    at = NOW + timedelta(seconds=30)

    async with engine.begin() as conn:
        deferred = await conn.run_sync(
            images_db.defer_image,
            claimed,
            owner="w1",
            at=at,
            error_reason="timeout",
            error="read timed out",
        )

    assert deferred
    [row] = await image_rows(engine, request_id)
    assert (row.status, row.lease_owner, row.available_at) == ("pending", None, at)
    assert (row.error_reason, row.attempts) == ("timeout", 1)
    assert await claim(engine, now=at - timedelta(microseconds=1)) == []
    [again] = await claim(engine, now=at)
    assert (again.id, again.attempts) == (claimed.id, 2)


async def test_defer_by_a_worker_without_the_lease_is_refused(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [claimed] = await claim(engine, "w1")

    async with engine.begin() as conn:
        deferred = await conn.run_sync(
            images_db.defer_image, claimed, owner="w2", at=NOW, error_reason="timeout", error="x"
        )

    assert not deferred
    assert [r.status for r in await image_rows(engine, request_id)] == ["processing"]


async def test_release_returns_the_owners_images_uncounted(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([3])
    await claim(engine, "w1", limit=2)
    [theirs] = await claim(engine, "w2")
    later = NOW + timedelta(seconds=1)

    async with engine.begin() as conn:
        released = await conn.run_sync(images_db.release_images, owner="w1", now=later)

    assert released == 2
    rows = {r.id: r for r in await image_rows(engine, request_id)}
    assert rows.pop(theirs.id).lease_owner == "w2"
    assert {(r.status, r.lease_owner, r.attempts, r.available_at) for r in rows.values()} == {
        ("pending", None, 0, later)
    }


async def test_retry_failed_reopens_a_finished_request(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1, 1, 1])
    first, second, third = await claim(engine)
    await finish(engine, first, done())
    await finish(engine, second, FAILED)
    await finish(engine, third, FAILED)
    later = NOW + timedelta(seconds=10)

    async with engine.begin() as conn:
        reopened = await conn.run_sync(requests_db.retry_failed, request_id, now=later)

    assert reopened == 2
    stored = await info(engine, request_id)
    assert (stored.status, stored.done, stored.failed) == (RequestStatus.IN_PROCESS, 1, 0)
    assert (stored.finished_at, stored.updated_at) == (None, later)
    rows = await image_rows(engine, request_id)
    assert [(r.status, r.attempts, r.error, r.available_at) for r in rows[1:]] == [
        ("pending", 0, None, later)
    ] * 2


async def test_retried_request_settles_again_when_its_images_end(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1, 1])
    for claimed in await claim(engine):
        await finish(engine, claimed, FAILED)
    async with engine.begin() as conn:
        await conn.run_sync(requests_db.retry_failed, request_id, now=NOW)

    first, second = await claim(engine, "w9")
    assert await finish(engine, first, done(), owner="w9") == (True, None)
    _, settlement = await finish(engine, second, FAILED, owner="w9")

    assert settlement is not None
    assert (settlement.status, settlement.done, settlement.failed) == (
        RequestStatus.COMPLETED,
        1,
        1,
    )


async def test_retry_without_failed_images_changes_nothing(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [claimed] = await claim(engine)
    await finish(engine, claimed, done())

    async with engine.begin() as conn:
        assert await conn.run_sync(requests_db.retry_failed, request_id, now=NOW) == 0
    assert (await info(engine, request_id)).status is RequestStatus.COMPLETED


async def test_retry_of_an_unknown_request_reopens_nothing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await conn.run_sync(requests_db.retry_failed, uuid4(), now=NOW) == 0


# -- notifications (the outbox) ------------------------------------------------------------------

PLANNED = [
    ("webhook", "request.completed", "http://127.0.0.1:9/hook", {"id": "x", "counts": [1, 2]}),
    ("log", "request.completed", None, {"ok": True}),
]


async def add_planned(engine: AsyncEngine, request_id: UUID) -> int:
    async with engine.begin() as conn:
        return await conn.run_sync(outbox.add_deliveries, request_id, PLANNED, now=NOW)


async def claim_outbox(
    engine: AsyncEngine, owner: str = "n1", *, now: datetime = NOW
) -> list[DeliveryClaim]:
    async with engine.begin() as conn:
        return await conn.run_sync(
            outbox.claim_deliveries, owner=owner, limit=10, lease=LEASE, now=now
        )


async def test_added_deliveries_are_listed_pending_and_due(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])

    assert await add_planned(engine, request_id) == 2

    async with reader(engine).connect() as conn:
        listed = await conn.run_sync(outbox.read_deliveries, request_id)
    assert [(d.notifier, d.target, d.status, d.attempts) for d in listed] == [
        ("webhook", "http://127.0.0.1:9/hook", "pending", 0),
        ("log", None, "pending", 0),
    ]
    assert {(d.created_at, d.next_attempt_at, d.delivered_at) for d in listed} == {(NOW, NOW, None)}
    assert len({d.message_id for d in listed}) == 2


async def test_claimed_deliveries_carry_their_payload_and_are_leased(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    await add_planned(engine, request_id)

    claims = await claim_outbox(engine)

    assert [(c.request_id, c.payload, c.attempts) for c in claims] == [
        (request_id, {"id": "x", "counts": [1, 2]}, 1),
        (request_id, {"ok": True}, 1),
    ]
    assert await claim_outbox(engine, "n2") == []


async def test_delivery_with_expired_lease_is_claimable_again(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    await add_planned(engine, request_id)
    first = await claim_outbox(engine, "n1")

    again = await claim_outbox(engine, "n2", now=NOW + LEASE)

    assert [(c.message_id, c.attempts) for c in again] == [(c.message_id, 2) for c in first]


async def test_finish_delivery_marks_it_delivered(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([1])
    await add_planned(engine, request_id)
    webhook, _ = await claim_outbox(engine)
    later = NOW + timedelta(seconds=2)

    async with engine.begin() as conn:
        ended = await conn.run_sync(
            outbox.finish_delivery,
            webhook,
            owner="n1",
            status="delivered",
            status_code=204,
            error=None,
            now=later,
        )

    assert ended
    async with reader(engine).connect() as conn:
        first = (await conn.run_sync(outbox.read_deliveries, request_id))[0]
    assert (first.status, first.last_status_code, first.delivered_at) == ("delivered", 204, later)
    assert first.next_attempt_at is None


async def test_finish_delivery_without_the_lease_is_refused(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    await add_planned(engine, request_id)
    webhook, _ = await claim_outbox(engine, "n1")

    async with engine.begin() as conn:
        ended = await conn.run_sync(
            outbox.finish_delivery,
            webhook,
            owner="n2",
            status="failed",
            status_code=500,
            error="x",
            now=NOW,
        )

    assert not ended
    async with reader(engine).connect() as conn:
        assert (await conn.run_sync(outbox.read_deliveries, request_id))[0].status == "sending"


async def test_delivery_retried_later_is_due_again_at_its_time(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    await add_planned(engine, request_id)
    webhook, _ = await claim_outbox(engine)
    at = NOW + timedelta(seconds=60)

    async with engine.begin() as conn:
        moved = await conn.run_sync(
            outbox.retry_delivery_later,
            webhook,
            owner="n1",
            at=at,
            status_code=503,
            error="busy",
            now=NOW,
        )

    assert moved
    async with reader(engine).connect() as conn:
        first = (await conn.run_sync(outbox.read_deliveries, request_id))[0]
    assert (first.status, first.next_attempt_at, first.last_error) == ("pending", at, "busy")
    assert await claim_outbox(engine, now=at - timedelta(microseconds=1)) == []
    [again] = await claim_outbox(engine, now=at)
    assert (again.message_id, again.attempts) == (webhook.message_id, 2)


# -- listing and reading -------------------------------------------------------------------------


async def test_list_requests_is_newest_first_with_the_total(
    engine: AsyncEngine, submit: Submit
) -> None:
    ids = [await submit([1], now=NOW + timedelta(microseconds=i)) for i in range(3)]

    async with reader(engine).connect() as conn:
        listed, total = await conn.run_sync(requests_db.list_requests)

    assert [r.request_id for r in listed] == ids[::-1]
    assert total == 3


async def test_list_requests_paginates(engine: AsyncEngine, submit: Submit) -> None:
    ids = [await submit([1], now=NOW + timedelta(seconds=i)) for i in range(5)]

    async with reader(engine).connect() as conn:
        page, total = await conn.run_sync(requests_db.list_requests, limit=2, offset=2)
        beyond, _ = await conn.run_sync(requests_db.list_requests, limit=2, offset=5)

    assert ([r.request_id for r in page], total) == ([ids[2], ids[1]], 5)
    assert beyond == []


async def test_list_requests_filters_by_status(engine: AsyncEngine, submit: Submit) -> None:
    started = await submit([1], now=NOW - timedelta(seconds=1))
    await claim(engine)
    waiting = await submit([1])

    async with reader(engine).connect() as conn:
        in_process, count = await conn.run_sync(
            requests_db.list_requests, status=RequestStatus.IN_PROCESS
        )
        pending, _ = await conn.run_sync(requests_db.list_requests, status=RequestStatus.PENDING)

    assert ([r.request_id for r in in_process], count) == ([started], 1)
    assert [r.request_id for r in pending] == [waiting]


async def test_list_requests_searches_product_names(engine: AsyncEngine, submit: Submit) -> None:
    wanted = await submit([1, 1], prefix="Blue Widget ")
    await submit([1], prefix="Red Gadget ")

    async with reader(engine).connect() as conn:
        listed, total = await conn.run_sync(requests_db.list_requests, search="widget 1")

    assert ([r.request_id for r in listed], total) == ([wanted], 1)


async def test_list_requests_search_ignores_case_on_every_backend(
    engine: AsyncEngine, submit: Submit
) -> None:
    wanted = await submit([1], prefix="Blue Widget ")

    async with reader(engine).connect() as conn:
        upper, _ = await conn.run_sync(requests_db.list_requests, search="BLUE WIDGET")
        lower, _ = await conn.run_sync(requests_db.list_requests, search="blue widget")

    assert [r.request_id for r in upper] == [r.request_id for r in lower] == [wanted]


async def test_list_requests_search_treats_wildcards_literally(
    engine: AsyncEngine, submit: Submit
) -> None:
    wanted = await submit([1], prefix="100% cotton_")
    await submit([1], prefix="1000 cottonX")

    async with reader(engine).connect() as conn:
        listed, _ = await conn.run_sync(requests_db.list_requests, search="0% cotton_")

    assert [r.request_id for r in listed] == [wanted]


async def test_list_requests_searches_request_ids(engine: AsyncEngine, submit: Submit) -> None:
    wanted = await submit([1])
    await submit([1])

    async with reader(engine).connect() as conn:
        listed, total = await conn.run_sync(requests_db.list_requests, search=f" {wanted} ")

    assert ([r.request_id for r in listed], total) == ([wanted], 1)


async def test_blank_search_lists_every_request(engine: AsyncEngine, submit: Submit) -> None:
    ids = {await submit([]), await submit([1])}

    async with reader(engine).connect() as conn:
        listed, total = await conn.run_sync(requests_db.list_requests, search="  ")

    assert ({r.request_id for r in listed}, total) == (ids, 2)


async def test_product_page_returns_a_range_in_order_with_images(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1, 3, 0, 2])

    async with reader(engine).connect() as conn:
        page = await conn.run_sync(requests_db.read_product_page, request_id, start=1, limit=2)

    assert [(p.position, p.serial, p.name, p.row) for p in page] == [
        (1, 2, "SKU1", 3),
        (2, 3, "SKU2", 4),
    ]
    assert [i.position for i in page[0].images] == [0, 1, 2]
    assert [i.input_url for i in page[0].images] == [
        f"http://127.0.0.1/p1/{index}.jpg" for index in range(3)
    ]
    assert {i.status for i in page[0].images} == {ImageStatus.PENDING}
    assert page[1].images == ()


async def test_product_page_shows_finished_image_details(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [claimed] = await claim(engine)
    await finish(engine, claimed, done(5))

    async with reader(engine).connect() as conn:
        [product] = await conn.run_sync(requests_db.read_product_page, request_id, start=0, limit=1)

    [image] = product.images
    assert (image.status, image.storage_key, image.attempts) == (ImageStatus.DONE, "out/5.jpg", 1)
    assert (image.input_bytes, image.output_bytes, image.started_at) == (1000, 400, NOW)


async def test_progress_page_shows_what_the_product_page_does_of_each_image(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([2, 0, 3])
    first, second, *_ = await claim(engine, limit=3)
    await finish(engine, first, done(7))
    await finish(engine, second, FAILED)

    async with reader(engine).connect() as conn:
        full = await conn.run_sync(requests_db.read_product_page, request_id, start=0, limit=10)
        progress = await conn.run_sync(
            requests_db.read_progress_page,
            request_id,
            start=0,
            limit=10,
            url_for=lambda key: f"https://cdn.test/{key}",
        )
        later = await conn.run_sync(
            requests_db.read_progress_page, request_id, start=1, limit=5, url_for=str
        )

    assert [(p.position, p.serial, p.name, len(p.images)) for p in progress] == [
        (p.position, p.serial, p.name, len(p.images)) for p in full
    ]
    assert [
        (i.position, i.input_url, i.status, i.error_reason, i.error)
        for p in progress
        for i in p.images
    ] == [
        (i.position, i.input_url, i.status, i.error_reason, i.error) for p in full for i in p.images
    ]
    statuses = [i.status for p in progress for i in p.images]
    assert statuses.count(ImageStatus.DONE) == statuses.count(ImageStatus.FAILED) == 1
    # Only the done image has an output URL, built from its storage key.
    assert [i.output_url for p in progress for i in p.images if i.output_url] == [
        "https://cdn.test/out/7.jpg"
    ]
    assert [p.position for p in later] == [1, 2]
    assert later[0].images == ()  # a product without images


async def test_storage_keys_lists_outputs_and_thumbnails(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1, 1, 1, 1])
    first, second, third, fourth = await claim(engine)
    own = msgspec.structs.replace(done(0), storage_key=f"requests/{request_id}/{first.id}.jpg")
    await finish(engine, first, own)
    await finish(engine, second, FAILED)
    await finish(engine, fourth, done(3))  # shows outputs not its own: reused
    async with engine.begin() as conn:
        await conn.run_sync(images_db.set_thumbnail_key, first.id, "thumb/0.jpg")

    async with reader(engine).connect() as conn:
        keys, attempted = await conn.run_sync(requests_db.storage_keys, request_id)

    assert sorted(keys) == sorted([str(own.storage_key), "out/3.jpg", "thumb/0.jpg"])
    # Attempted and never done (failed, or not ended), or done with outputs not its own: an
    # attempt may have written the keys its preset fixes without recording them.
    assert sorted(attempted) == sorted([second.id, third.id, fourth.id])


async def test_delete_request_removes_everything(engine: AsyncEngine, submit: Submit) -> None:
    request_id = await submit([2, 1])
    kept = await submit([1])
    await add_planned(engine, request_id)

    async with engine.begin() as conn:
        assert await conn.run_sync(requests_db.delete_request, request_id)

    for table in (requests, products, images, deliveries):
        assert await count_rows(engine, table, request_id) == 0
    assert await count_rows(engine, images, kept) == 1


async def test_delete_of_an_unknown_request_reports_false(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert not await conn.run_sync(requests_db.delete_request, uuid4())


# -- timestamps ------------------------------------------------------------------------------------


async def test_timestamps_come_back_aware_utc_with_microseconds(
    engine: AsyncEngine, submit: Submit
) -> None:
    request_id = await submit([1])
    [claimed] = await claim(engine)
    await finish(engine, claimed, done())

    stored = await info(engine, request_id)
    [row] = await image_rows(engine, request_id)

    stamps = [stored.created_at, stored.updated_at, stored.finished_at, row.started_at]
    assert stamps == [NOW] * 4
    assert all(s is not None and s.tzinfo is UTC for s in stamps)
    assert row.finished_at.microsecond == 535897


async def test_timestamps_in_another_zone_are_stored_as_the_same_instant(
    engine: AsyncEngine, submit: Submit
) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    request_id = await submit([1], now=NOW.astimezone(india))

    created = (await info(engine, request_id)).created_at

    assert (created, created.tzinfo) == (NOW, UTC)


async def test_naive_timestamps_are_refused(engine: AsyncEngine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        async with engine.begin() as conn:
            await conn.run_sync(
                requests_db.create_request,
                request_id=uuid4(),
                header=HEADER,
                filename=None,
                webhook_url=None,
                now=NOW.replace(tzinfo=None),
            )
