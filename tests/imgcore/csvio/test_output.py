"""imgcore._csvio.output: the output CSV writer."""

from __future__ import annotations

import csv
import io

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imgcore._csvio import CsvHeader, CsvParser, OutputRow, write_output_csv
from imgcore.errors import ImgcoreError
from support.csvcheck import URL, URL2, parse
from support.csvgen import HEADER, image_url

OUT_HEADER = CsvHeader(columns=HEADER, serial_index=0, name_index=1, urls_index=2)


def output(
    rows: list[OutputRow], header: CsvHeader = OUT_HEADER, **kwargs: bool
) -> list[list[str]]:
    data = b"".join(write_output_csv(header, rows, **kwargs))
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def out_row(**kwargs: object) -> OutputRow:
    fields: dict[str, object] = {
        "serial": 1,
        "name": "Mug",
        "input_urls": (URL,),
        "output_urls": ("https://out.example/1.jpg",),
    }
    fields.update(kwargs)
    return msgspec.convert(fields, OutputRow)


def test_output_has_the_input_columns_then_output_urls_and_errors() -> None:
    assert output([out_row()]) == [
        ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls", "Errors"],
        ["1", "Mug", URL, "https://out.example/1.jpg", ""],
    ]


def test_output_urls_keep_their_positions_with_empty_items() -> None:
    row_ = out_row(input_urls=(URL, URL2, URL), output_urls=("o1", None, "o3"))
    assert output([row_])[1][2:4] == [f"{URL},{URL2},{URL}", "o1,,o3"]


def test_output_errors_are_joined_with_semicolons() -> None:
    row_ = out_row(errors=("1: HTTP 404 Not Found", "2: timeout"))
    assert output([row_])[1][4] == "1: HTTP 404 Not Found; 2: timeout"


def test_output_puts_extra_values_back_in_their_columns() -> None:
    header = CsvHeader(
        columns=("Notes", "S. No.", "Product Name", "Input Image Urls", "Tag"),
        serial_index=1,
        name_index=2,
        urls_index=3,
    )
    assert output([out_row(extra=("n", "t"))], header)[1] == [
        "n",
        "1",
        "Mug",
        URL,
        "t",
        "https://out.example/1.jpg",
        "",
    ]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_output_neutralises_a_name_that_a_spreadsheet_would_run(start: str) -> None:
    name = f'{start}HYPERLINK("http://evil.example/")'
    assert output([out_row(name=name)])[1][1] == "'" + name


def test_output_neutralises_extra_values_errors_and_header_names() -> None:
    header = CsvHeader(columns=(*HEADER, "=Note"), serial_index=0, name_index=1, urls_index=2)
    rows = output([out_row(extra=("@SUM(A1)",), errors=("-1+2",))], header)
    assert (rows[0][3], rows[1][3], rows[1][5]) == ("'=Note", "'@SUM(A1)", "'-1+2")


def test_output_leaves_formula_characters_inside_a_cell_alone() -> None:
    assert output([out_row(name="a=b+c")])[1][1] == "a=b+c"


def test_output_is_utf8_with_crlf_and_no_bom() -> None:
    data = b"".join(write_output_csv(OUT_HEADER, [out_row(name="Café")]))
    assert data.startswith(b"S. No.,")
    assert data.endswith(b"\r\n")
    assert "Café".encode() in data


def test_output_is_streamed_in_chunks() -> None:
    rows = [out_row(serial=i) for i in range(1, 5_001)]
    chunks = list(write_output_csv(OUT_HEADER, rows, chunk_bytes=16 * 1024))
    assert len(chunks) > 5
    assert all(len(chunk) < 17 * 1024 for chunk in chunks)


def test_output_without_header_starts_with_the_first_row() -> None:
    assert output([out_row()], include_header=False) == [
        ["1", "Mug", URL, "https://out.example/1.jpg", ""]
    ]


def test_output_refuses_a_row_whose_outputs_do_not_match_its_inputs() -> None:
    with pytest.raises(ImgcoreError) as info:
        output([out_row(output_urls=())])
    assert info.value.reason == "output_row_mismatch"


def test_output_parses_back_to_the_same_products() -> None:
    rows = [
        out_row(serial=2, name='Mug, "big"\nnew', input_urls=(URL, URL2), output_urls=(None, "o"))
    ]
    data = b"".join(write_output_csv(OUT_HEADER, rows))
    [product] = parse(data)
    assert (product.serial, product.name, product.urls, product.extra) == (
        2,
        'Mug, "big"\nnew',
        (URL, URL2),
        (",o", ""),
    )


_PLAIN_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)


_NAMES = _PLAIN_TEXT.filter(
    lambda s: s.strip() == s and s != "" and not s.startswith(("=", "+", "-", "@"))
)


_EXTRAS = _PLAIN_TEXT.filter(lambda s: not s.startswith(("=", "+", "-", "@", "\t", "\r")))


_URLS = st.builds(
    image_url, st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=9)
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            _NAMES,
            st.lists(_URLS, min_size=1, max_size=4),
            st.lists(st.none() | st.just("https://out.example/x.jpg"), min_size=4, max_size=4),
            _EXTRAS,
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(min_value=1, max_value=10**12),
)
def test_written_rows_parse_back_to_the_same_products(
    specs: list[tuple[str, list[str], list[str | None], str]], first_serial: int
) -> None:
    header = CsvHeader(columns=(*HEADER, "Notes"), serial_index=0, name_index=1, urls_index=2)
    rows = [
        OutputRow(
            serial=first_serial + i,
            name=name,
            input_urls=tuple(urls),
            output_urls=tuple(outs[: len(urls)]),
            extra=(note,),
        )
        for i, (name, urls, outs, note) in enumerate(specs)
    ]
    parser = CsvParser()
    products = parser.feed(b"".join(write_output_csv(header, rows))) + parser.finish()
    assert [(p.serial, p.name, p.urls, p.extra[0]) for p in products] == [
        (r.serial, r.name, r.input_urls, r.extra[0]) for r in rows
    ]
    assert parser.header is not None
    assert parser.header.extra_columns == ("Notes", "Output Image Urls", "Errors")
