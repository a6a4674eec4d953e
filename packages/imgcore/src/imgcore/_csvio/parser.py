"""The streaming parser of input CSVs: records in, valid products and problems out."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final, NoReturn

import msgspec

from imgcore._csvio.header import CsvHeader, count_cells, read_header
from imgcore._csvio.limits import (
    CsvIssue,
    CsvLimits,
    CsvLimitsError,
    CsvValidationError,
    Problem,
)
from imgcore._csvio.records import bad_quote_cell, open_cell
from imgcore._csvio.rules import (
    SeenSerials,
    cell_count_problem,
    cell_too_long,
    is_blank,
    name_problem,
    oversized_cells,
    serial_problem,
    too_many_columns,
)
from imgcore._csvio.urls import UrlRules, split_urls
from imgcore.errors import ImgcoreError

__all__ = ["CsvParser", "CsvReader", "Product", "iter_products"]

_BOM: Final = b"\xef\xbb\xbf"


class Product(msgspec.Struct, frozen=True, kw_only=True):
    """One valid data row of an input CSV."""

    row: int  # physical record number (header = 1)
    serial: int
    name: str  # stripped of surrounding whitespace
    urls: tuple[str, ...]
    extra: tuple[str, ...] = ()  # values of the extra columns, in header order, as written


_END_OF_DATA: Final = "unexpected end of data"  # csv's message when input ends inside quotes


class CsvParser:
    """Push parser: ``feed()`` bytes as they arrive (sync or async source), then ``finish()``.

    Results never depend on how the input is cut into chunks: bytes are processed in windows
    of ``window_bytes`` at fixed stream offsets, whatever the sizes of the fed chunks.
    Memory stays bounded by the window plus ``CsvLimits.record_bytes`` plus the set of serials.
    """

    def __init__(self, limits: CsvLimits | None = None, *, window_bytes: int = 256 * 1024) -> None:
        if window_bytes < 1:
            raise CsvLimitsError(f"window_bytes must be at least 1, not {window_bytes}")
        self.limits = limits if limits is not None else CsvLimits()
        #: Set once the header record was read.
        self.header: CsvHeader | None = None
        #: Bytes received so far.
        self.bytes_read = 0
        #: Data rows read so far, valid or not (the header and blank rows are not counted).
        self.rows_read = 0
        #: Blank rows skipped so far, before the header too; they count against max_rows.
        self.blank_rows = 0
        self._window = window_bytes
        self._inbox = bytearray()  # fed bytes not yet processed (less than one window)
        self._pending = b""  # the start of a record whose end has not arrived yet
        self._records = 0  # physical records seen, the header and blank ones included
        self._started = False  # the BOM check was done
        self._finished = False
        self._issues: list[CsvIssue] = []
        self._truncated = False
        self._error: CsvValidationError | None = None
        self._serials = SeenSerials(self.limits.max_rows)
        self._urls = UrlRules(self.limits)
        # csv refuses fields longer than its (process-wide) limit; allow the configured size.
        if csv.field_size_limit() <= self.limits.max_cell_bytes:
            csv.field_size_limit(self.limits.max_cell_bytes + 1)
        # Set with the header.
        self._ncols = 0
        self._columns: tuple[str, ...] = ()
        self._indices = (0, 0, 0)
        self._extra_indices: tuple[int, ...] = ()

    @property
    def issues(self) -> tuple[CsvIssue, ...]:
        """Problems found so far (the input is rejected at the end if there are any)."""
        return tuple(self._issues)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Product]:
        """Parse the next chunk of the file; return the valid rows it completed.

        Raises ``CsvValidationError`` at once when reading further is pointless (a limit is
        exceeded, the bytes are not UTF-8, the header is wrong, the issue cap overflows).
        """
        self._check_open()
        allowed = self.limits.max_file_bytes - self.bytes_read
        too_large = len(data) > allowed
        accepted = data[:allowed] if too_large else data
        self.bytes_read += len(accepted)
        self._inbox += accepted
        products: list[Product] = []
        window = self._window
        if len(self._inbox) >= window:
            start = 0
            while len(self._inbox) - start >= window:
                products += self._process(bytes(self._inbox[start : start + window]), final=False)
                start += window
            del self._inbox[:start]
        if too_large:
            self.bytes_read += len(data) - len(accepted)
            self._fail(
                None,
                None,
                "file_too_large",
                f"the file is larger than {self.limits.max_file_bytes} bytes",
            )
        return products

    def finish(self) -> list[Product]:
        """Parse what is left; raise ``CsvValidationError`` if any problem was seen."""
        self._check_open()
        self._finished = True
        products = self._process(bytes(self._inbox), final=True)
        self._inbox.clear()
        if not self._issues:
            if self.header is None:
                self._add(None, None, "empty_file", "the file is empty (no header, no rows)")
            elif self.rows_read == 0:
                self._add(None, None, "empty_file", "the file has a header but no rows")
        if self._issues:
            self._fail()
        return products

    # -- internals

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise ImgcoreError("the CSV parser was already finished", reason="parser_finished")

    def _add(self, row: int | None, column: str | None, reason: str, message: str) -> None:
        if len(self._issues) >= self.limits.max_errors:
            self._truncated = True
            self._fail()
        self._issues.append(CsvIssue(row=row, column=column, reason=reason, message=message))

    def _fail(
        self,
        row: int | None = None,
        column: str | None = None,
        reason: str | None = None,
        message: str = "",
    ) -> NoReturn:
        if reason is not None:
            if len(self._issues) < self.limits.max_errors:
                self._issues.append(
                    CsvIssue(row=row, column=column, reason=reason, message=message)
                )
            else:
                self._truncated = True
        self._error = CsvValidationError(self._issues, self._truncated)
        raise self._error

    def _process(self, data: bytes, *, final: bool) -> list[Product]:
        """Parse the complete records of pending + data; keep the unfinished rest pending."""
        lo = len(self._pending)
        buf = self._pending + data
        if not self._started:
            if len(buf) < len(_BOM) and not final:
                self._pending = buf
                return []
            self._started = True
            lo = 0
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
            elif buf.startswith((b"\xff\xfe", b"\xfe\xff")):
                self._fail(1, None, "encoding", "the file is UTF-16; save it as UTF-8")
        if final:
            cut = len(buf)
        else:
            # A CR at the very end may be the first half of a CRLF: wait for the next byte.
            cut = max(buf.rfind(b"\n", lo), buf.rfind(b"\r", lo, len(buf) - 1)) + 1
        self._pending = buf[cut:]
        products = self._parse_batch(buf[:cut], final=final) if cut else []
        if len(self._pending) > self.limits.record_bytes:
            self._record_too_long()
        return products

    def _column_at(self, prefix: bytes) -> str | None:
        """The header name of the cell that ``prefix`` (the start of a record) ends in."""
        if self.header is None:
            return None
        index, _ = open_cell(prefix)
        columns = self.header.columns
        return columns[index] if index < len(columns) else None

    def _record_too_long(self) -> NoReturn:
        limits = self.limits
        limit = limits.record_bytes
        # Only the record's first limit + 1 bytes are judged: how much more is pending
        # depends on the window, and the verdict must not.
        prefix = self._pending[: limit + 1]
        index, start = open_cell(prefix)
        if index >= limits.max_columns:
            why = f"it has more than {limits.max_columns} cells"
        elif len(prefix) - start > limits.max_cell_bytes:
            why = (
                f"this cell alone has more than {limits.max_cell_bytes} bytes"
                " (or a quote in it is never closed)"
            )
        else:
            why = "a cell is too long, there are too many columns, or a quote is never closed"
        self._fail(
            self._records + 1,
            self._column_at(prefix),
            "record_too_long",
            f"a record is longer than {limit} bytes: {why}",
        )

    def _parse_batch(self, batch: bytes, *, final: bool) -> list[Product]:
        """Decode and parse a run of records (the last one may be unfinished)."""
        nul = batch.find(b"\x00")
        try:
            text = batch.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = exc.start
        else:
            if nul < 0:
                return self._parse_text(text, final=final)
            bad = len(batch)
        if 0 <= nul < bad:
            bad = nul
            reason, message = "nul_byte", "the file contains a NUL byte (is it a binary file?)"
        else:
            reason, message = "encoding", "the file is not valid UTF-8; save it as UTF-8"
        # Parse the records before the bad line, then report the record holding the bad byte.
        line_start = max(batch.rfind(b"\n", 0, bad), batch.rfind(b"\r", 0, bad)) + 1
        pending = len(self._pending)
        self._parse_text(batch[:line_start].decode("utf-8"), final=False)
        # The lines of a quoted cell that started before the bad line went back to pending.
        record_start = line_start - (len(self._pending) - pending)
        column = self._column_at(batch[record_start:bad])
        return self._fail(self._records + 1, column, reason, message)

    def _parse_text(self, text: str, *, final: bool) -> list[Product]:
        if self.header is None:
            self._precheck_header(text, self._records)
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        products: list[Product] = []
        mark = 0  # lines consumed up to the end of the last complete record
        while True:
            try:
                check_row = self._check_row
                for row in reader:
                    self._records += 1
                    mark = reader.line_num
                    if self.header is None:
                        if is_blank(row):
                            self._count_blank(self._records)
                        else:
                            self._read_header(row, self._records)
                        continue
                    product = check_row(row, self._records)
                    if product is not None:
                        products.append(product)
                break
            except csv.Error as exc:
                if _END_OF_DATA in str(exc) and not final:
                    # The last record continues in the next window: keep it pending.
                    lines = io.StringIO(text, newline="").readlines()
                    self._pending = "".join(lines[mark:]).encode() + self._pending
                    break
                record_start = mark
                self._records += 1
                mark = reader.line_num
                if self.header is not None:
                    self._count_row(self._records)
                if _END_OF_DATA in str(exc):
                    lines = io.StringIO(text, newline="").readlines()
                    self._add(
                        self._records,
                        self._column_at("".join(lines[record_start:]).encode()),
                        "unbalanced_quotes",
                        "a quote opened in this cell is never closed",
                    )
                    break
                if "field larger than field limit" in str(exc):
                    self._add(self._records, None, *cell_too_long(self.limits))
                else:
                    record = "".join(io.StringIO(text, newline="").readlines()[record_start:mark])
                    index = bad_quote_cell(record, self._ncols)
                    columns = self.header.columns if self.header is not None else ()
                    self._add(
                        self._records,
                        columns[index] if index is not None and index < len(columns) else None,
                        "invalid_quoting",
                        "a quoted cell must end with a quote followed by a comma or the end of"
                        f" the line ({exc})",
                    )
                if self.header is None:
                    self._fail()
        return products

    def _precheck_header(self, text: str, records: int) -> None:
        """Reject a huge header before csv builds a list of all its cells."""
        body = text.lstrip("\r\n")
        skipped = text[: len(text) - len(body)]
        row = records + 1 + skipped.count("\n") + skipped.count("\r") - skipped.count("\r\n")
        end = min((i for i in (body.find("\n"), body.find("\r")) if i >= 0), default=len(body))
        problem = too_many_columns(count_cells(body[:end]), self.limits, header=True)
        if problem is not None:
            self._fail(row, None, *problem)

    def _read_header(self, row: list[str], rec: int) -> None:
        problem = too_many_columns(len(row), self.limits, header=True)
        if problem is not None:
            self._fail(rec, None, *problem)
        header, problems = read_header(row)
        for column, (reason, message) in problems:
            self._add(rec, column, reason, message)
        if header is None:
            self._fail()
        self.header = header
        self._ncols = len(row)
        self._columns = header.columns
        self._indices = (header.serial_index, header.name_index, header.urls_index)
        self._extra_indices = header.extra_indices

    def _check_row(self, row: list[str], rec: int) -> Product | None:
        """Return a data row as a Product, or record why it is not one and return None."""
        if is_blank(row):
            self._count_blank(rec)
            return None
        limits = self.limits
        problem = cell_count_problem(len(row), self._ncols)
        if problem is not None:
            self._count_row(rec)
            fatal = too_many_columns(len(row), limits)
            if fatal is not None:
                self._fail(rec, None, *fatal)
            self._add(rec, None, *problem)
            return None
        oversized = oversized_cells(row, limits)
        if oversized:
            # Judged on that alone: the serial of such a row is not recorded.
            self._reject(rec, oversized)
            return None
        serial_index, name_index, urls_index = self._indices
        problems: list[tuple[int, Problem]] = []
        serial, problem = serial_problem(row[serial_index], self._serials)
        if problem is not None:
            problems.append((serial_index, problem))
        name = row[name_index].strip()
        problem = name_problem(name)
        if problem is not None:
            problems.append((name_index, problem))
        urls = split_urls(row[urls_index])
        problems += [(urls_index, problem) for problem in self._urls.problems(urls)]
        if problems:
            self._reject(rec, problems)
            return None
        self._count_row(rec)
        extra = tuple([row[i] for i in self._extra_indices]) if self._extra_indices else ()
        return Product(row=rec, serial=serial, name=name, urls=tuple(urls), extra=extra)

    def _reject(self, rec: int, problems: list[tuple[int, Problem]]) -> None:
        """Count a row that breaks rules and record its problems, by cell position."""
        self._count_row(rec)
        columns = self._columns
        for index, (reason, message) in problems:
            self._add(rec, columns[index], reason, message)

    def _count_row(self, rec: int) -> None:
        self.rows_read += 1
        self._check_row_limit(rec)

    def _count_blank(self, rec: int) -> None:
        self.blank_rows += 1
        self._check_row_limit(rec)

    def _check_row_limit(self, rec: int) -> None:
        # Blank rows count too: skipping one costs about what checking a short row does, so
        # a file of nothing but blank rows is bounded by the same limit.
        if self.rows_read + self.blank_rows > self.limits.max_rows:
            self._fail(
                rec,
                None,
                "too_many_rows",
                f"the file has more than {self.limits.max_rows} rows",
            )


class CsvReader:
    """Drives a ``CsvParser`` over a binary file or an iterable of byte chunks.

    Iterate to get the valid products; ``header`` is set once the header was read.
    ``CsvValidationError`` is raised at the end of the input if any problem was found (earlier
    if reading further is pointless), so a consumer writing rows in one transaction can roll back.
    """

    def __init__(
        self,
        source: BinaryIO | Iterable[bytes],
        limits: CsvLimits | None = None,
        *,
        chunk_size: int = 256 * 1024,
    ) -> None:
        self.parser = CsvParser(limits)
        self._source = source
        self._chunk_size = chunk_size

    @property
    def header(self) -> CsvHeader | None:
        """The header, once read."""
        return self.parser.header

    def __iter__(self) -> Iterator[Product]:
        parser = self.parser
        for chunk in self._chunks():
            yield from parser.feed(chunk)
        yield from parser.finish()

    def _chunks(self) -> Iterator[bytes]:
        read = getattr(self._source, "read", None)
        if read is None:
            yield from self._source
            return
        while chunk := read(self._chunk_size):
            yield chunk


def iter_products(
    source: BinaryIO | Iterable[bytes],
    limits: CsvLimits | None = None,
    *,
    chunk_size: int = 256 * 1024,
) -> Iterator[Product]:
    """Yield the valid products of an input CSV; raise ``CsvValidationError`` at the end if any
    problem was found (see ``CsvReader`` to get the header too)."""
    return iter(CsvReader(source, limits, chunk_size=chunk_size))
