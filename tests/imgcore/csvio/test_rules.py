"""imgcore._csvio.rules: what a data row must satisfy."""

from __future__ import annotations

import pytest
from imgcore._csvio import Product
from support.csvcheck import HEAD, URL, URL2, issues, one_issue, parse, row


def test_valid_row_becomes_a_product() -> None:
    assert parse(HEAD + row(1, "Mug", f"{URL},{URL2}")) == [
        Product(row=2, serial=1, name="Mug", urls=(URL, URL2))
    ]


def test_serial_may_be_surrounded_by_spaces() -> None:
    assert [p.serial for p in parse(HEAD + row(" 2 "))] == [2]


@pytest.mark.parametrize("serial", ["0", "-1", "1.5", "abc", "", "+1", "1e3", "\u0661", "9" * 30])
def test_serial_that_is_not_a_positive_integer_is_rejected(serial: str) -> None:
    issue = one_issue(HEAD + row(serial))
    assert (issue.row, issue.column, issue.reason) == (2, "S. No.", "invalid_serial")


def test_repeated_serial_is_rejected_at_the_repeat() -> None:
    issue = one_issue(HEAD + row(1) + row(2) + row(1))
    assert (issue.row, issue.column, issue.reason) == (4, "S. No.", "duplicate_serial")


def test_repeated_large_serial_is_rejected() -> None:
    issue = one_issue(HEAD + row(10**15) + row(10**15))
    assert (issue.row, issue.reason) == (3, "duplicate_serial")


def test_product_name_is_stripped() -> None:
    assert [p.name for p in parse(HEAD + row(name="  Mug \t"))] == ["Mug"]


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_product_name_is_rejected(name: str) -> None:
    issue = one_issue(HEAD + row(name=name))
    assert (issue.row, issue.column, issue.reason) == (2, "Product Name", "empty_name")


def test_row_with_fewer_cells_than_the_header_is_rejected() -> None:
    issue = one_issue(HEAD + row(1) + b"2,OnlyTwoCols\n" + row(3))
    assert (issue.row, issue.column, issue.reason) == (3, None, "wrong_cell_count")


def test_row_with_more_cells_than_the_header_is_rejected() -> None:
    issue = one_issue(HEAD + b"1,Mug, " + f'"{URL},{URL2}"'.encode() + b"\n")
    assert (issue.row, issue.reason) == (2, "wrong_cell_count")


def test_blank_lines_are_skipped_but_counted_in_row_numbers() -> None:
    products = parse(b"\n" + HEAD + b"\n" + row(1) + b"\r\n\n" + row(2))
    assert [p.row for p in products] == [4, 7]


def test_rows_of_empty_cells_are_skipped() -> None:
    assert [p.serial for p in parse(HEAD + row(1) + b",,\n , ,  \n" + row(2))] == [1, 2]


def test_all_issues_of_a_file_are_reported_together() -> None:
    data = HEAD + row(0) + row(2, name="") + row(3, urls="ftp://x/") + row(4)
    found = issues(data)
    assert [(i.row, i.reason) for i in found] == [
        (2, "invalid_serial"),
        (3, "empty_name"),
        (4, "unsupported_scheme"),
    ]
