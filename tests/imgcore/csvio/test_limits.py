"""imgcore._csvio.limits: the limits, enforced while parsing, and the errors."""

from __future__ import annotations

import csv
import pickle

import msgspec
import pytest
from imgcore._csvio import CsvIssue, CsvLimits, CsvLimitsError, CsvParser, CsvValidationError
from imgcore.errors import ImgcoreError
from support.csvcheck import HEAD, URL, URL2, feed_all, issues, one_issue, parse, row
from support.csvgen import csv_bytes, product_rows


def test_more_rows_than_the_limit_stops_parsing() -> None:
    parser = CsvParser(CsvLimits(max_rows=2), window_bytes=64)
    data = csv_bytes(product_rows(10))
    with pytest.raises(CsvValidationError) as info:
        parser.feed(data)
    assert [(i.row, i.reason) for i in info.value.issues] == [(4, "too_many_rows")]


def test_row_count_at_the_limit_is_accepted() -> None:
    assert len(parse(csv_bytes(product_rows(2)), CsvLimits(max_rows=2))) == 2


def test_blank_rows_count_against_the_row_limit() -> None:
    found = issues(HEAD + row(1) + b",,\n , ,\n\n" + row(2), CsvLimits(max_rows=3))
    assert [(i.row, i.reason) for i in found] == [(5, "too_many_rows")]


def test_blank_lines_before_the_header_count_against_the_row_limit() -> None:
    issue = one_issue(b"\n" * 5 + HEAD + row(1), CsvLimits(max_rows=3))
    assert (issue.row, issue.reason) == (4, "too_many_rows")


def test_a_file_of_blank_rows_stops_at_the_row_limit_while_it_is_read() -> None:
    parser = CsvParser(CsvLimits(max_rows=10), window_bytes=64)
    with pytest.raises(CsvValidationError) as info:
        parser.feed(HEAD + b",,\n" * 1000)
    assert [(i.row, i.reason) for i in info.value.issues] == [(12, "too_many_rows")]


def test_data_and_blank_rows_up_to_the_row_limit_are_accepted() -> None:
    products = parse(HEAD + row(1) + b",,\n" + row(2), CsvLimits(max_rows=3))
    assert [p.serial for p in products] == [1, 2]


def test_row_with_more_cells_than_the_column_limit_stops_parsing() -> None:
    found = issues(HEAD + b"1,Mug,x,4,5\n" + row(0), CsvLimits(max_columns=4))
    assert [(i.row, i.reason) for i in found] == [(2, "too_many_columns")]


def test_more_urls_than_the_limit_is_rejected() -> None:
    issue = one_issue(HEAD + row(urls=f"{URL},{URL2},{URL}"), CsvLimits(max_urls_per_row=2))
    assert (issue.row, issue.column, issue.reason) == (2, "Input Image Urls", "too_many_urls")


def test_url_longer_than_the_limit_is_rejected() -> None:
    issue = one_issue(HEAD + row(urls=URL), CsvLimits(max_url_length=len(URL) - 1))
    assert (issue.row, issue.reason) == (2, "url_too_long")


def test_cell_longer_than_the_limit_is_rejected_with_its_column() -> None:
    issue = one_issue(HEAD + row(name="x" * 31), CsvLimits(max_cell_bytes=30))
    assert (issue.row, issue.column, issue.reason) == (2, "Product Name", "cell_too_long")


def test_cell_limit_counts_utf8_bytes() -> None:
    limits = CsvLimits(max_cell_bytes=10, max_url_length=10)
    head = b"S. No.,Product Name,Input Image Urls\n"
    assert [p.name for p in parse(head + row(name="é" * 5, urls="http://h/"), limits)] == ["é" * 5]
    assert one_issue(head + row(name="é" * 6, urls="http://h/"), limits).reason == "cell_too_long"


def test_cell_beyond_the_csv_module_field_limit_is_reported_as_too_long() -> None:
    issue = one_issue(HEAD + row(name="x" * (csv.field_size_limit() + 1)))
    assert (issue.row, issue.reason) == (2, "cell_too_long")


def test_file_larger_than_the_limit_stops_parsing_at_once() -> None:
    parser = CsvParser(CsvLimits(max_file_bytes=100))
    parser.feed(b"x" * 100)
    with pytest.raises(CsvValidationError) as info:
        parser.feed(b"x")
    assert [(i.row, i.reason) for i in info.value.issues] == [(None, "file_too_large")]


def test_record_longer_than_the_record_limit_stops_parsing() -> None:
    parser = CsvParser(CsvLimits(max_record_bytes=100), window_bytes=32)
    with pytest.raises(CsvValidationError) as info:
        parser.feed(HEAD + row(1) + b'2,"' + b"x" * 200)
    assert [(i.row, i.reason) for i in info.value.issues] == [(3, "record_too_long")]


def test_ten_megabyte_cell_fails_before_the_rest_is_read() -> None:
    parser = CsvParser()
    data = HEAD + b'1,"' + b"x" * 10_000_000 + b'",' + URL.encode() + b"\n"
    chunks = (data[start : start + 64 * 1024] for start in range(0, len(data), 64 * 1024))
    with pytest.raises(CsvValidationError) as info:
        feed_all(parser, chunks)
    assert [(i.row, i.reason) for i in info.value.issues] == [(2, "record_too_long")]
    assert parser.bytes_read < 5_000_000


def test_issues_beyond_the_cap_are_dropped_and_flagged() -> None:
    data = HEAD + b"".join(row(0) for _ in range(5))
    with pytest.raises(CsvValidationError) as info:
        parse(data, CsvLimits(max_errors=3))
    assert [i.row for i in info.value.issues] == [2, 3, 4]
    assert info.value.truncated


def test_issues_up_to_the_cap_are_not_flagged_truncated() -> None:
    data = HEAD + b"".join(row(0) for _ in range(3))
    with pytest.raises(CsvValidationError) as info:
        parse(data, CsvLimits(max_errors=3))
    assert len(info.value.issues) == 3
    assert not info.value.truncated


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(CsvLimitsError):
        CsvLimits(max_rows=0)


def test_validation_error_is_an_imgcore_error_with_reason() -> None:
    with pytest.raises(ImgcoreError) as info:
        parse(HEAD + row(0))
    assert info.value.reason == "invalid_csv"
    assert "row 2, column 'S. No.'" in info.value.message


def test_issues_encode_as_json() -> None:
    with pytest.raises(CsvValidationError) as info:
        parse(HEAD + row(0))
    assert msgspec.json.decode(msgspec.json.encode(info.value.issues))[0] == {
        "row": 2,
        "column": "S. No.",
        "reason": "invalid_serial",
        "message": "'0' is not a positive whole number",
    }


def test_validation_error_survives_pickling() -> None:
    error = CsvValidationError([CsvIssue(row=2, column=None, reason="x", message="y")], True)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.issues, copy.truncated, copy.message) == (error.issues, True, error.message)
