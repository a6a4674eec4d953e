"""imgcore._csvio.header: which header names the required columns."""

from __future__ import annotations

import tracemalloc

import pytest
from imgcore._csvio import CsvHeader, CsvLimits, CsvParser, CsvValidationError
from support.csvcheck import HEAD, URL, issues, one_issue, parse, row
from support.csvgen import csv_bytes


@pytest.mark.parametrize(
    "name", ["S. No.", "S.No", "sno", "Serial Number", "serial_number", "SERIAL NO", "Sl. No."]
)
def test_serial_column_is_recognised_by_any_alias(name: str) -> None:
    data = f"{name},Product Name,Input Image Urls\n".encode() + row(7)
    assert [p.serial for p in parse(data)] == [7]


@pytest.mark.parametrize("name", ["Product Name", "product_name", "PRODUCT-NAME", "productname"])
def test_name_column_is_recognised_by_any_alias(name: str) -> None:
    data = f"S. No.,{name},Input Image Urls\n".encode() + row(name="Mug")
    assert [p.name for p in parse(data)] == ["Mug"]


@pytest.mark.parametrize(
    "name", ["Input Image Urls", "input_image_urls", "Input Image URL(s)", "Input Image Url"]
)
def test_urls_column_is_recognised_by_any_alias(name: str) -> None:
    data = f"S. No.,Product Name,{name}\n".encode() + row(urls=URL)
    assert [p.urls for p in parse(data)] == [(URL,)]


def test_required_columns_may_come_in_any_order() -> None:
    data = b"Input Image Urls,Product Name,S. No.\n" + csv_bytes([(URL, "Mug", 3)], header=None)
    [product] = parse(data)
    assert (product.serial, product.name, product.urls) == (3, "Mug", (URL,))


def test_header_keeps_the_column_names_as_written() -> None:
    parser = CsvParser()
    parser.feed(
        b" S. No. ,product_name,Input Image URL(s),Notes\n" + b'1,Mug,"' + URL.encode() + b'",n\n'
    )
    parser.finish()
    assert parser.header == CsvHeader(
        columns=(" S. No. ", "product_name", "Input Image URL(s)", "Notes"),
        serial_index=0,
        name_index=1,
        urls_index=2,
    )


def test_extra_columns_are_carried_through_in_order() -> None:
    data = csv_bytes(
        [("a", 1, "Mug", "b", URL, "c")],
        header=("X", "S. No.", "Product Name", "Y", "Input Image Urls", "Z"),
    )
    parser = CsvParser()
    [product] = parser.feed(data) + parser.finish()
    assert parser.header is not None
    assert parser.header.extra_columns == ("X", "Y", "Z")
    assert product.extra == ("a", "b", "c")


def test_each_missing_required_column_is_reported() -> None:
    found = issues(b"foo,Product Name,bar\n1,Mug,x\n")
    assert [(i.row, i.column, i.reason) for i in found] == [
        (1, "S. No.", "missing_column"),
        (1, "Input Image Urls", "missing_column"),
    ]


def test_columns_equal_after_normalisation_are_duplicates() -> None:
    issue = one_issue(HEAD.replace(b"\n", b",Notes,NOTES\n") + row())
    assert (issue.row, issue.column, issue.reason) == (1, "NOTES", "duplicate_column")


def test_two_aliases_of_one_required_column_are_duplicates() -> None:
    issue = one_issue(b"S. No.,Serial Number,Product Name,Input Image Urls\n1,2,Mug,x\n")
    assert (issue.row, issue.column, issue.reason) == (1, "Serial Number", "duplicate_column")


def test_blank_header_names_may_repeat() -> None:
    data = HEAD.replace(b"\n", b",,\n") + b"1,Mug," + URL.encode() + b",,\n"
    assert [p.extra for p in parse(data)] == [("", "")]


def test_header_with_more_columns_than_the_limit_is_rejected() -> None:
    data = HEAD.replace(b"\n", b",a,b\n") + b"1,Mug,x,1,2\n"
    issue = one_issue(data, CsvLimits(max_columns=4))
    assert (issue.row, issue.reason) == (1, "too_many_columns")


def test_huge_header_fails_fast_without_splitting_it() -> None:
    data = b",".join(b"column_%06d" % i for i in range(100_000)) + b"\n" + row()
    tracemalloc.start()
    try:
        with pytest.raises(CsvValidationError) as info:
            parse(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [i.reason for i in info.value.issues] == ["too_many_columns"]
    assert peak < 8_000_000  # a list of its 100,000 cells alone takes about 10 MB
