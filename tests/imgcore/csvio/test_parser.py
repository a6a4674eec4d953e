"""imgcore._csvio.parser: encodings, quoting, chunking and the parser's API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imgcore._csvio import CsvLimits, CsvParser, CsvReader, CsvValidationError, iter_products
from imgcore.errors import ImgcoreError
from support.csvcheck import HEAD, URL, URL2, issues, one_issue, outcome, parse, row
from support.csvgen import csv_bytes, parse_chunks, product_rows


def test_utf8_bom_is_ignored() -> None:
    parser = CsvParser()
    parser.feed(b"\xef\xbb\xbf" + HEAD + row())
    parser.finish()
    assert parser.header is not None
    assert parser.header.columns[0] == "S. No."


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_any_line_ending_gives_the_same_rows(newline: str) -> None:
    rows = list(product_rows(3))
    assert parse(csv_bytes(rows, newline=newline)) == parse(csv_bytes(rows))


def test_mixed_line_endings_are_accepted() -> None:
    data = HEAD.replace(b"\n", b"\r\n") + row(1) + row(2).replace(b"\n", b"\r\n") + row(3)
    assert [p.serial for p in parse(data)] == [1, 2, 3]


def test_non_ascii_text_is_decoded_as_utf8() -> None:
    [product] = parse(HEAD + row(name="Café crème ☕"))
    assert product.name == "Café crème ☕"


def test_bytes_that_are_not_utf8_are_reported_with_their_row() -> None:
    data = HEAD + row(1) + row(2, name="Café").decode().encode("latin-1") + row(3)
    issue = one_issue(data)
    assert (issue.row, issue.reason) == (3, "encoding")


def test_utf16_file_is_reported_as_an_encoding_problem() -> None:
    issue = one_issue((HEAD + row()).decode().encode("utf-16"))
    assert (issue.row, issue.reason) == (1, "encoding")


def test_truncated_utf8_sequence_at_the_end_is_an_encoding_problem() -> None:
    issue = one_issue(HEAD + row() + b"2,Caf\xc3")
    assert (issue.row, issue.reason) == (3, "encoding")


def test_nul_byte_is_reported_with_its_row() -> None:
    issue = one_issue(HEAD + row(1) + row(2, name="M\x00ug"))
    assert (issue.row, issue.reason) == (3, "nul_byte")


def test_quoted_cell_may_span_lines_and_counts_as_one_row() -> None:
    products = parse(HEAD + row(1, name="two\nlines") + row(2))
    assert [(p.row, p.name) for p in products] == [(2, "two\nlines"), (3, "Mug")]


def test_quote_left_open_at_end_of_file_is_reported() -> None:
    issue = one_issue(HEAD + row(1) + b'2,"Mug,' + URL.encode() + b"\n3,Cup,x\n")
    assert (issue.row, issue.reason) == (3, "unbalanced_quotes")


def test_text_after_a_closing_quote_is_reported() -> None:
    found = issues(HEAD + b'1,"Mug"s,' + URL.encode() + b"\n" + row(2))
    assert [(i.row, i.reason) for i in found] == [(2, "invalid_quoting")]


def test_empty_file_is_rejected() -> None:
    assert one_issue(b"").reason == "empty_file"


def test_file_of_blank_lines_is_rejected_as_empty() -> None:
    assert one_issue(b"\n\r\n\n").reason == "empty_file"


def test_header_without_rows_is_rejected() -> None:
    issue = one_issue(HEAD)
    assert (issue.reason, issue.message) == ("empty_file", "the file has a header but no rows")


def test_feed_returns_the_valid_rows_even_when_other_rows_are_bad() -> None:
    parser = CsvParser(window_bytes=1)
    products = parser.feed(HEAD + row(1) + row(0) + row(3))
    assert [p.serial for p in products] == [1, 3]


SAMPLE = (
    b"\xef\xbb\xbfS. No.,Product Name,Input Image Urls,Notes\r\n"
    + f'1,"Caf\u00e9, ""Tasse""","{URL},{URL2}",n\u00e9\r\n'.encode()
    + b'2,"two\r\nlines",'
    + URL.encode()
    + b",\n"
    + b"\n"
    + b"3,Plate,"
    + URL2.encode()
    + b",x"
)


@pytest.mark.parametrize("window", [1, 7, 64, 256 * 1024])
def test_every_split_point_gives_the_same_products(window: int) -> None:
    whole = parse_chunks([SAMPLE], window=window)
    assert isinstance(whole, list)
    assert [p.serial for p in whole] == [1, 2, 3]
    for cut in range(len(SAMPLE) + 1):
        assert parse_chunks([SAMPLE[:cut], SAMPLE[cut:]], window=window) == whole


@pytest.mark.parametrize("window", [1, 2, 7])
def test_window_size_does_not_change_the_products(window: int) -> None:
    assert parse_chunks([SAMPLE], window=window) == parse_chunks([SAMPLE])


def test_one_byte_at_a_time_gives_the_same_products_as_whole() -> None:
    data = csv_bytes(product_rows(50), newline="\r\n", bom=True)
    whole = parse_chunks([data], window=100)
    assert parse_chunks([data[i : i + 1] for i in range(len(data))], window=100) == whole


def test_one_byte_at_a_time_gives_the_same_issues_as_whole() -> None:
    data = HEAD + row(1) + row(0) + row(3, urls="ftp://x/") + b"4,Mug\n" + b'5,"open'
    whole = parse_chunks([data], window=16)
    assert isinstance(whole, CsvValidationError)
    bytewise = parse_chunks([data[i : i + 1] for i in range(len(data))], window=16)
    assert outcome(bytewise) == outcome(whole)


def test_header_is_set_once_the_header_record_is_read() -> None:
    parser = CsvParser(window_bytes=8)
    parser.feed(b"S. No.,Product")
    assert parser.header is None
    parser.feed(b" Name,Input Image Urls\n" + row())
    assert parser.header is not None


def test_counters_follow_the_input() -> None:
    parser = CsvParser()
    data = HEAD + row(1) + b"\n" + row(2)
    parser.feed(data)
    parser.finish()
    assert (parser.bytes_read, parser.rows_read) == (len(data), 2)


def test_blank_rows_are_counted_apart_from_data_rows() -> None:
    parser = CsvParser()
    parser.feed(b"\n" + HEAD + row(1) + b",,\n\n" + row(2))
    parser.finish()
    assert (parser.rows_read, parser.blank_rows) == (2, 3)


def test_parser_refuses_input_after_finish() -> None:
    parser = CsvParser()
    parser.feed(HEAD + row())
    parser.finish()
    with pytest.raises(ImgcoreError) as info:
        parser.feed(row(2))
    assert info.value.reason == "parser_finished"


def test_parser_repeats_its_error_after_stopping() -> None:
    parser = CsvParser(CsvLimits(max_file_bytes=10))
    with pytest.raises(CsvValidationError) as first:
        parser.feed(HEAD)
    with pytest.raises(CsvValidationError) as again:
        parser.feed(row())
    assert again.value is first.value


def test_iter_products_reads_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(csv_bytes(product_rows(5)))
    with path.open("rb") as f:
        assert [p.serial for p in iter_products(f, chunk_size=10)] == [1, 2, 3, 4, 5]


def test_iter_products_reads_an_iterable_of_chunks() -> None:
    data = csv_bytes(product_rows(3))
    assert [p.serial for p in iter_products([data[:20], data[20:]])] == [1, 2, 3]


def test_iter_products_yields_valid_rows_then_raises_at_the_end() -> None:
    rows = list(product_rows(2_000))
    rows[-1] = (0, "bad", URL)
    seen: list[int] = []
    products = iter_products([csv_bytes(rows)], chunk_size=1024)
    with pytest.raises(CsvValidationError):
        seen.extend(product.serial for product in products)
    assert seen[:2] == [1, 2]


def test_csv_reader_exposes_the_header() -> None:
    reader = CsvReader(
        io.BytesIO(HEAD.replace(b"\n", b",Notes\n") + b"1,Mug," + URL.encode() + b",n\n")
    )
    assert [p.extra for p in reader] == [("n",)]
    assert reader.header is not None
    assert reader.header.extra_columns == ("Notes",)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=400),
    with_header=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=4),
    window=st.integers(min_value=1, max_value=64),
)
def test_arbitrary_bytes_give_rows_or_a_validation_error_whatever_the_chunks(
    body: bytes, with_header: bool, cuts: list[int], window: int
) -> None:
    data = (HEAD if with_header else b"") + body
    limits = CsvLimits(max_cell_bytes=200, max_errors=5)
    whole = parse_chunks([data], limits, window=window)  # raises nothing else
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert outcome(parse_chunks(pieces, limits, window=window)) == outcome(whole)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=400), window=st.integers(min_value=1, max_value=64))
def test_window_size_does_not_change_the_outcome(body: bytes, window: int) -> None:
    data = HEAD + body
    assert outcome(parse_chunks([data], window=window)) == outcome(parse_chunks([data]))
