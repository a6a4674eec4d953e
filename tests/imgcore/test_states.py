"""The request and image status machines, checked against tables written out here."""

from __future__ import annotations

import itertools

import pytest
from imgcore.errors import ImgcoreError
from imgcore.states import (
    IllegalTransitionError,
    ImageStatus,
    RequestStatus,
    image_transition,
    request_transition,
    settle,
)

P, IP, C, F = "Pending", "In Process", "Completed", "Failed"

# Every allowed request transition, by display string; everything else is illegal.
ALLOWED_REQUEST = {
    (P, IP),
    (IP, C),
    (IP, F),
    (C, IP),  # an operator retries the failed images of a finished request
    (F, IP),
}

ALLOWED_IMAGE = {
    ("pending", "processing"),
    ("processing", "done"),
    ("processing", "failed"),
    ("processing", "pending"),  # deferred after a transient error, or released on shutdown
    ("failed", "pending"),  # an operator's retry
}

REQUEST_PAIRS = list(itertools.product(RequestStatus, repeat=2))
IMAGE_PAIRS = list(itertools.product(ImageStatus, repeat=2))


def pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}->{pair[1]}"


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


@pytest.mark.parametrize(
    ("current", "target"),
    [p for p in REQUEST_PAIRS if (p[0].value, p[1].value) in ALLOWED_REQUEST],
    ids=pair_id,
)
def test_allowed_request_transition_returns_target(
    current: RequestStatus, target: RequestStatus
) -> None:
    assert request_transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [p for p in REQUEST_PAIRS if (p[0].value, p[1].value) not in ALLOWED_REQUEST],
    ids=pair_id,
)
def test_illegal_request_transition_raises(current: RequestStatus, target: RequestStatus) -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        request_transition(current, target)

    error = caught.value
    assert (error.kind, error.current, error.target) == ("request", current.value, target.value)
    assert error.reason == "illegal_transition"


@pytest.mark.parametrize(
    ("current", "target"),
    [p for p in IMAGE_PAIRS if (p[0].value, p[1].value) in ALLOWED_IMAGE],
    ids=pair_id,
)
def test_allowed_image_transition_returns_target(current: ImageStatus, target: ImageStatus) -> None:
    assert image_transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [p for p in IMAGE_PAIRS if (p[0].value, p[1].value) not in ALLOWED_IMAGE],
    ids=pair_id,
)
def test_illegal_image_transition_raises(current: ImageStatus, target: ImageStatus) -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        image_transition(current, target)

    error = caught.value
    assert (error.kind, error.current, error.target) == ("image", current.value, target.value)


def test_expected_tables_name_only_real_statuses() -> None:
    # A misspelt status in the tables above would silently turn an allowed pair into an illegal one.
    assert {(a.value, b.value) for a, b in REQUEST_PAIRS} >= ALLOWED_REQUEST
    assert {(a.value, b.value) for a, b in IMAGE_PAIRS} >= ALLOWED_IMAGE


def test_illegal_transition_error_is_an_imgcore_error_with_both_statuses_in_message() -> None:
    with pytest.raises(ImgcoreError, match="'Completed' -> 'Pending'"):
        request_transition(RequestStatus.COMPLETED, RequestStatus.PENDING)


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
