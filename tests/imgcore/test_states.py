"""Request and image statuses, and when a request ends."""

from __future__ import annotations

import pytest
from imgcore.states import ImageStatus, RequestStatus, failure_summary, settle

P, IP, C, F = "Pending", "In Process", "Completed", "Failed"


def test_request_display_strings_are_exactly_the_seed_clients_ones() -> None:
    assert [status.value for status in RequestStatus] == [P, IP, C, F]


def test_request_statuses_compare_equal_to_their_display_strings() -> None:
    assert RequestStatus.IN_PROCESS == "In Process"
    assert str(RequestStatus.IN_PROCESS) == "In Process"
    assert f"{RequestStatus.COMPLETED}" == "Completed"


def test_image_status_values() -> None:
    assert [status.value for status in ImageStatus] == ["pending", "processing", "done", "failed"]


def test_terminal_request_statuses_are_completed_and_failed() -> None:
    assert {s.value for s in RequestStatus if s.is_terminal} == {C, F}


def test_terminal_image_statuses_are_done_and_failed() -> None:
    assert {s.value for s in ImageStatus if s.is_terminal} == {"done", "failed"}


def expected_settlement(total: int, done: int, failed: int) -> str | None:
    """Written out independently: still running, else Completed with any success."""
    if done + failed < total:
        return None
    return C if done >= 1 else F


CONSISTENT_COUNTS = [
    (total, done, failed)
    for total in range(5)
    for done in range(total + 1)
    for failed in range(total + 1 - done)
]


@pytest.mark.parametrize(("total", "done", "failed"), CONSISTENT_COUNTS)
def test_settle_for_consistent_counts(total: int, done: int, failed: int) -> None:
    assert settle(total, done, failed) == expected_settlement(total, done, failed)


def test_settle_spot_checks() -> None:
    assert settle(3, 1, 1) is None
    assert settle(3, 1, 2) is RequestStatus.COMPLETED
    assert settle(3, 0, 3) is RequestStatus.FAILED
    assert settle(3, 3, 0) is RequestStatus.COMPLETED


def test_request_without_images_settles_failed() -> None:
    assert settle(0, 0, 0) is RequestStatus.FAILED


INCONSISTENT_COUNTS = [
    (total, done, failed)
    for total in range(5)
    for done in range(6)
    for failed in range(6)
    if done + failed > total
] + [(-1, 0, 0), (2, -1, 0), (2, 0, -1), (-1, -1, -1)]


@pytest.mark.parametrize(("total", "done", "failed"), INCONSISTENT_COUNTS)
def test_settle_rejects_inconsistent_counts(total: int, done: int, failed: int) -> None:
    with pytest.raises(ValueError, match="inconsistent counts"):
        settle(total, done, failed)


def test_failure_summary_counts_reasons_most_first_and_spells_out_storage() -> None:
    assert failure_summary(5, {}) is None
    assert failure_summary(5, {"timeout": 0}) is None
    assert failure_summary(10, {"http_status": 1, "storage_error": 2}) == (
        "3 of 10 images failed: 2 storage_error (the storage could not be written), 1 http_status"
    )
