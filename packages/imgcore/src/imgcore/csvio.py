"""Streaming parse and validation of the input CSV; the output CSV writer.

Input format (the original Django app's)::

    S. No.,Product Name,Input Image Urls
    1,SKU1,"https://a.example/1.jpg,https://a.example/2.jpg"

* UTF-8, with or without a BOM; CRLF, LF or CR line endings, mixed if need be.
  Quoting follows RFC 4180 (the stdlib ``csv`` module in strict mode does the parsing).
* Header names are compared ignoring case, spaces and punctuation (``S. No.``, ``sno``,
  ``Serial Number``, ``product_name``, ``Input Image URL(s)``…; see ``HEADER_ALIASES``).
  Other columns are allowed and carried through to the output CSV.
* Several URLs share one cell, separated by commas; whitespace around each URL is ignored,
  and so are empty items (a trailing comma). A URL containing a literal comma therefore cannot
  be expressed in this format: percent-encode it as ``%2C``.
* Blank lines, and rows whose cells are all blank (spreadsheets export those), are skipped.
  They still count in row numbers, which are physical record numbers: the header is row 1.

Problems are collected, up to ``CsvLimits.max_errors``, and raised together as one
``CsvValidationError`` at the end, so a user sees every problem at once. Input that cannot be
read usefully any further (a limit exceeded, bytes that are not UTF-8, a bad header) stops the
parse at once with the same exception.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO, Final, NoReturn, Self

import msgspec

from imgcore.errors import ImgcoreError

__all__ = [
    "ERRORS_COLUMN",
    "HEADER_ALIASES",
    "OUTPUT_URLS_COLUMN",
    "CsvHeader",
    "CsvIssue",
    "CsvLimits",
    "CsvLimitsError",
    "CsvParser",
    "CsvReader",
    "CsvValidationError",
    "OutputRow",
    "Product",
    "iter_products",
    "write_output_csv",
]

SERIAL: Final = "serial"
NAME: Final = "name"
URLS: Final = "urls"

#: Normalised header name (lowercase, alphanumerics only) -> the required column it names.
HEADER_ALIASES: Final[dict[str, str]] = {
    "sno": SERIAL,
    "srno": SERIAL,
    "slno": SERIAL,
    "serial": SERIAL,
    "serialno": SERIAL,
    "serialnum": SERIAL,
    "serialnumber": SERIAL,
    "productname": NAME,
    "product": NAME,
    "name": NAME,
    "inputimageurls": URLS,
    "inputimageurl": URLS,
    "inputimages": URLS,
    "imageurls": URLS,
    "imageurl": URLS,
    "urls": URLS,
}
_DISPLAY: Final = {SERIAL: "S. No.", NAME: "Product Name", URLS: "Input Image Urls"}

OUTPUT_URLS_COLUMN: Final = "Output Image Urls"
ERRORS_COLUMN: Final = "Errors"

_BOM: Final = b"\xef\xbb\xbf"
_MAX_SERIAL: Final = 2**63 - 1  # fits a signed 64-bit database column
_SHOWN_CHARS: Final = 80  # how much of an offending value a message quotes


class CsvLimitsError(ImgcoreError, ValueError):
    """A ``CsvLimits`` value is out of range."""

    reason = "invalid_limits"


class CsvLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits applied while parsing an input CSV; every one is configurable."""

    max_rows: int = 1_000_000
    max_columns: int = 64
    max_urls_per_row: int = 50
    max_cell_bytes: int = 64 * 1024
    max_file_bytes: int = 100_000_000
    max_url_length: int = 2048
    max_errors: int = 100
    #: Longest unfinished record kept in memory; ``None`` means max_columns * max_cell_bytes.
    max_record_bytes: int | None = None

    def __post_init__(self) -> None:
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if value is not None and value < 1:
                raise CsvLimitsError(f"CsvLimits.{field} must be at least 1, not {value}")

    @property
    def record_bytes(self) -> int:
        """The effective ``max_record_bytes``."""
        if self.max_record_bytes is not None:
            return self.max_record_bytes
        return self.max_columns * self.max_cell_bytes


class CsvIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem found in an input CSV."""

    #: 1-based physical record number: the header is row 1, the first data row is 2.
    row: int | None
    #: The header name as written in the file (the expected name for a missing column),
    #: or None for problems that concern the whole file or a whole row.
    column: str | None
    #: Machine-readable code, e.g. "invalid_url".
    reason: str
    #: A sentence for people.
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CsvValidationError(ImgcoreError):
    """The input CSV was rejected; ``issues`` lists every problem found (up to the cap)."""

    reason = "invalid_csv"

    def __init__(self, issues: Sequence[CsvIssue], truncated: bool = False) -> None:
        self.issues: list[CsvIssue] = list(issues)
        #: True when more problems existed than ``CsvLimits.max_errors``.
        self.truncated = truncated
        count = f"{len(issues)}{'+' if truncated else ''}"
        shown = "; ".join(str(issue) for issue in issues[:3])
        more = "; …" if len(issues) > 3 or truncated else ""
        super().__init__(f"invalid CSV ({count} problem(s)): {shown}{more}")

    def __reduce__(self) -> tuple[type[Self], tuple[list[CsvIssue], bool]]:
        return (type(self), (self.issues, self.truncated))


class CsvHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The header record of an input CSV and where the required columns are."""

    columns: tuple[str, ...]  # every header cell as written (BOM removed)
    serial_index: int
    name_index: int
    urls_index: int

    @property
    def extra_indices(self) -> tuple[int, ...]:
        """Positions of the extra columns, in order."""
        known = (self.serial_index, self.name_index, self.urls_index)
        return tuple(i for i in range(len(self.columns)) if i not in known)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Names of the extra columns, in order."""
        return tuple(self.columns[i] for i in self.extra_indices)


class Product(msgspec.Struct, frozen=True, kw_only=True):
    """One valid data row of an input CSV."""

    row: int  # physical record number (header = 1)
    serial: int
    name: str  # stripped of surrounding whitespace
    urls: tuple[str, ...]
    extra: tuple[str, ...] = ()  # values of the extra columns, in header order, as written


class OutputRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the output CSV."""

    serial: int
    name: str
    input_urls: tuple[str, ...]
    output_urls: tuple[str | None, ...]  # same length and order as input_urls; None: no output
    errors: tuple[str, ...] = ()  # human error lines, e.g. "2: HTTP 404 Not Found"
    extra: tuple[str, ...] = ()


# --- URL rules ---------------------------------------------------------------------------------

_LABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_PORT: Final = (
    r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
# The common case, checked fast with str methods: "http(s)://" + an authority made of an ASCII
# host name or IPv4 address and an optional valid port (checked once per distinct authority),
# the rest printable and free of spaces. Anything else goes through _url_problem(), which
# accepts a superset (IPv6, IDN hosts, upper-case schemes…) and says what is wrong.
_PLAIN_SCHEMES: Final = ("http:", "https:")
_PLAIN_AUTHORITY: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?(?::{_PORT})?")
_AUTHORITY_CACHE_SIZE: Final = 4096
_HOST_LABEL: Final = re.compile(_LABEL)
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_BAD_CHAR: Final = re.compile(r"[\s\x00-\x1f\x7f]")
_AUTHORITY: Final = re.compile(r"[^/?#]*")


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…")


def _url_problem(url: str) -> tuple[str, str] | None:
    """Why ``url`` is not an acceptable image URL, as (reason, message); None if it is."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "invalid_url", f"{_shown(url)} is not an absolute http(s) URL"
    if scheme[1].lower() not in ("http", "https"):
        return "unsupported_scheme", f"{_shown(url)}: only http and https URLs are accepted"
    if _BAD_CHAR.search(url):
        return "invalid_url", f"{_shown(url)} contains spaces or control characters"
    rest = url[scheme.end() :]
    if not rest.startswith("//"):
        return "invalid_url", f"{_shown(url)} has no host"
    authority = _AUTHORITY.match(rest, 2)
    assert authority is not None  # the pattern matches the empty string
    hostport = authority[0]
    if "@" in hostport:
        return "url_credentials", f"{_shown(url)} carries credentials; they are not accepted"
    if hostport.startswith("["):
        host, bracket, port_part = hostport[1:].partition("]")
        if not bracket or (port_part and not port_part.startswith(":")):
            return "invalid_url", f"{_shown(url)} has a malformed IPv6 host"
        port = port_part[1:] if port_part else None
    else:
        host, colon, port_str = hostport.partition(":")
        port = port_str if colon else None
    if port is not None and not (
        port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535
    ):
        return "invalid_url", f"{_shown(url)} has an invalid port"
    if not host:
        return "invalid_url", f"{_shown(url)} has no host"
    if hostport.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "invalid_url", f"{_shown(url)} has an invalid IPv6 host"
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "invalid_url", f"{_shown(url)} has an invalid host name"
    labels = ascii_host.removesuffix(".").split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "invalid_url", f"{_shown(url)} has an invalid host name"
    return None


# --- parsing -----------------------------------------------------------------------------------


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _is_blank(row: list[str]) -> bool:
    return all(not cell.strip() for cell in row)


def _count_cells(line: str) -> int:
    """Cells in one CSV line, counting only commas outside quotes (cheap, for the header)."""
    return 1 + sum(part.count(",") for part in line.split('"')[::2])


def _open_cell(prefix: bytes) -> tuple[int, int]:
    """For the start of a record: the index of the cell it ends in, and that cell's offset.

    Commas inside quotes do not count (a doubled quote toggles twice, so it is neutral).
    """
    index = start = offset = 0
    for i, part in enumerate(prefix.split(b'"')):
        if i % 2 == 0 and (commas := part.count(b",")):
            index += commas
            start = offset + part.rindex(b",") + 1
        offset += len(part) + 1
    return index, start


_CSV_TOKEN: Final = re.compile(r'[^",\r\n]+|.', re.DOTALL)
_MAX_QUOTE_TOKENS: Final = 100_000


def _bad_quote_cell(record: str, ncols: int) -> int | None:
    """Index of the cell whose closing quote is followed by text (what csv's strict mode
    refuses) in ``record``; None if not found within the first ``ncols`` cells."""
    index, state = 0, "start"  # start of a cell, unquoted "field", "quoted", "closed" quote
    for count, match in enumerate(_CSV_TOKEN.finditer(record)):
        piece = match[0]
        if count > _MAX_QUOTE_TOKENS:
            return None
        if state == "quoted":
            state = "closed" if piece == '"' else "quoted"
        elif piece in "\r\n":
            return None  # the record ended without the error
        elif piece == ",":
            index, state = index + 1, "start"
            if index >= ncols:
                return None
        elif state == "closed":
            if piece != '"':
                return index
            state = "quoted"  # a doubled quote
        elif state == "start":
            state = "quoted" if piece == '"' else "field"
    return None


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
        self._window = window_bytes
        self._inbox = bytearray()  # fed bytes not yet processed (less than one window)
        self._pending = b""  # the start of a record whose end has not arrived yet
        self._records = 0  # physical records seen, the header and blank ones included
        self._started = False  # the BOM check was done
        self._finished = False
        self._issues: list[CsvIssue] = []
        self._truncated = False
        self._error: CsvValidationError | None = None
        # Serials seen: a bitmap for small ones (1M serials ~ 1 MB), a set for the rest.
        self._seen_bits = bytearray()
        self._seen_bits_cap = max(8 * self.limits.max_rows, 1 << 16)
        self._seen_big: set[int] = set()
        self._good_authorities: set[str] = set()  # passed _PLAIN_AUTHORITY
        # csv refuses fields longer than its (process-wide) limit; allow the configured size.
        if csv.field_size_limit() <= self.limits.max_cell_bytes:
            csv.field_size_limit(self.limits.max_cell_bytes + 1)
        # Set with the header.
        self._ncols = 0
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
        index, _ = _open_cell(prefix)
        columns = self.header.columns
        return columns[index] if index < len(columns) else None

    def _record_too_long(self) -> NoReturn:
        limits = self.limits
        limit = limits.record_bytes
        # Only the record's first limit + 1 bytes are judged: how much more is pending
        # depends on the window, and the verdict must not.
        prefix = self._pending[: limit + 1]
        index, start = _open_cell(prefix)
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
                        if row and not _is_blank(row):
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
                    self._add(
                        self._records,
                        None,
                        "cell_too_long",
                        f"a cell is longer than {self.limits.max_cell_bytes} bytes",
                    )
                else:
                    record = "".join(io.StringIO(text, newline="").readlines()[record_start:mark])
                    index = _bad_quote_cell(record, self._ncols)
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
        cells = _count_cells(body[:end])
        if cells > self.limits.max_columns:
            self._fail(
                row,
                None,
                "too_many_columns",
                f"the header has {cells} columns; at most {self.limits.max_columns} are allowed",
            )

    def _read_header(self, row: list[str], rec: int) -> None:
        limits = self.limits
        if len(row) > limits.max_columns:
            self._fail(
                rec,
                None,
                "too_many_columns",
                f"the header has {len(row)} columns; at most {limits.max_columns} are allowed",
            )
        first_by_norm: dict[str, str] = {}
        roles: dict[str, int] = {}
        for index, name in enumerate(row):
            norm = _normalise(name)
            role = HEADER_ALIASES.get(norm)
            if norm and norm in first_by_norm:
                self._add(
                    rec,
                    name,
                    "duplicate_column",
                    f"column {name!r} repeats column {first_by_norm[norm]!r}"
                    " (names are compared ignoring case, spaces and punctuation)",
                )
            elif role is not None and role in roles:
                self._add(
                    rec,
                    name,
                    "duplicate_column",
                    f"column {name!r} names the same column as {row[roles[role]]!r}",
                )
            first_by_norm.setdefault(norm, name)
            if role is not None:
                roles.setdefault(role, index)
        for role in (SERIAL, NAME, URLS):
            if role not in roles:
                self._add(
                    rec,
                    _DISPLAY[role],
                    "missing_column",
                    f"the header has no {_DISPLAY[role]!r} column",
                )
        if self._issues:
            self._fail()
        self.header = CsvHeader(
            columns=tuple(row),
            serial_index=roles[SERIAL],
            name_index=roles[NAME],
            urls_index=roles[URLS],
        )
        self._ncols = len(row)
        self._indices = (self.header.serial_index, self.header.name_index, self.header.urls_index)
        self._extra_indices = self.header.extra_indices

    def _check_row(self, row: list[str], rec: int) -> Product | None:
        """Accept a data row that is plainly valid, else hand it to ``_check_row_fully``."""
        # The common case, kept lean: most files are a million of these.
        limits = self.limits
        serial_index, name_index, urls_index = self._indices
        if len(row) != self._ncols or max(map(len, row)) * 4 > limits.max_cell_bytes:
            return self._check_row_fully(row, rec)
        raw = row[serial_index]
        name = row[name_index].strip()
        urls = [url.strip() for url in row[urls_index].split(",")]
        if "" in urls:
            urls = [url for url in urls if url]
        if not (
            raw.isdigit()
            and raw.isascii()
            and len(raw) < 19
            and name
            and urls
            and len(urls) <= limits.max_urls_per_row
            and max(map(len, urls)) <= limits.max_url_length
            and self._plain_urls(urls)
        ):
            return self._check_row_fully(row, rec)
        serial = int(raw)
        if serial == 0 or self._seen(serial):
            # _check_row_fully() sees the serial as seen too: that is right for a repeat.
            return self._check_row_fully(row, rec)
        self.rows_read += 1
        if self.rows_read > limits.max_rows:
            self._too_many_rows(rec)
        extra = tuple([row[i] for i in self._extra_indices]) if self._extra_indices else ()
        return Product(row=rec, serial=serial, name=name, urls=tuple(urls), extra=extra)

    def _plain_urls(self, urls: list[str]) -> bool:
        """Whether every URL is plainly valid (False: it needs ``_url_problem()`` to decide)."""
        good = self._good_authorities
        for url in urls:
            # "https://host:port/path" -> ["https:", "", "host:port", "path"]
            parts = url.split("/", 3)
            if len(parts) < 3 or parts[1] or parts[0] not in _PLAIN_SCHEMES:
                return False
            authority = parts[2]
            if authority not in good:
                if not _PLAIN_AUTHORITY.fullmatch(authority):
                    return False
                if len(good) < _AUTHORITY_CACHE_SIZE:
                    good.add(authority)
        joined = ",".join(urls)
        return " " not in joined and joined.isprintable()

    def _check_row_fully(self, row: list[str], rec: int) -> Product | None:
        """Validate one data row: return it as a Product, or record its issues and return None."""
        header = self.header
        assert header is not None
        limits = self.limits
        if len(row) != self._ncols:
            if not row or _is_blank(row):
                return None
            self._count_row(rec)
            if len(row) > limits.max_columns:
                self._fail(
                    rec,
                    None,
                    "too_many_columns",
                    f"the row has {len(row)} cells; at most {limits.max_columns} are allowed",
                )
            self._add(
                rec,
                None,
                "wrong_cell_count",
                f"the row has {len(row)} cells but the header has {self._ncols}"
                " (a cell holding commas must be quoted)",
            )
            return None

        columns = header.columns
        problems: list[tuple[str, str, str]] = []  # (column, reason, message)
        if max(map(len, row)) * 4 > limits.max_cell_bytes:  # UTF-8 needs <= 4 bytes a char
            for index, cell in enumerate(row):
                size = len(cell.encode())
                if size > limits.max_cell_bytes:
                    problems.append(
                        (
                            columns[index],
                            "cell_too_long",
                            f"the cell has {size} bytes; at most {limits.max_cell_bytes}"
                            " are allowed",
                        )
                    )
            if problems:
                self._reject(row, rec, problems)
                return None

        raw = row[header.serial_index]
        text = raw if raw.isdigit() else raw.strip()
        serial = 0
        if text.isdigit() and text.isascii() and len(text) <= 30:
            serial = int(text)
        if not 0 < serial <= _MAX_SERIAL:
            problems.append(
                (
                    columns[header.serial_index],
                    "invalid_serial",
                    f"{_shown(raw)} is not a positive whole number",
                )
            )
        elif self._seen(serial):
            problems.append(
                (
                    columns[header.serial_index],
                    "duplicate_serial",
                    f"serial number {serial} appears more than once",
                )
            )

        name = row[header.name_index].strip()
        if not name:
            problems.append((columns[header.name_index], "empty_name", "the product name is empty"))

        urls_column = columns[header.urls_index]
        urls = []
        for part in row[header.urls_index].split(","):
            url = part.strip()
            if url:
                urls.append(url)
        if not urls:
            problems.append((urls_column, "no_urls", "the row has no image URL"))
        elif len(urls) > limits.max_urls_per_row:
            problems.append(
                (
                    urls_column,
                    "too_many_urls",
                    f"the row has {len(urls)} URLs; at most {limits.max_urls_per_row} are allowed",
                )
            )
        else:
            max_length = limits.max_url_length
            for url in urls:
                if len(url) > max_length:
                    problems.append(
                        (
                            urls_column,
                            "url_too_long",
                            f"{_shown(url)} is longer than {max_length} characters",
                        )
                    )
                else:
                    problem = _url_problem(url)
                    if problem is not None:
                        problems.append((urls_column, *problem))
        if problems:
            self._reject(row, rec, problems)
            return None
        self._count_row(rec)
        extra = tuple([row[i] for i in self._extra_indices]) if self._extra_indices else ()
        return Product(row=rec, serial=serial, name=name, urls=tuple(urls), extra=extra)

    def _reject(self, row: list[str], rec: int, problems: list[tuple[str, str, str]]) -> None:
        if _is_blank(row):
            return
        self._count_row(rec)
        for column, reason, message in problems:
            self._add(rec, column, reason, message)

    def _count_row(self, rec: int) -> None:
        self.rows_read += 1
        if self.rows_read > self.limits.max_rows:
            self._too_many_rows(rec)

    def _too_many_rows(self, rec: int) -> NoReturn:
        self._fail(
            rec,
            None,
            "too_many_rows",
            f"the file has more than {self.limits.max_rows} rows",
        )

    def _seen(self, serial: int) -> bool:
        """Record ``serial``; return whether it was seen before."""
        if serial >= self._seen_bits_cap:
            if serial in self._seen_big:
                return True
            self._seen_big.add(serial)
            return False
        bits = self._seen_bits
        index = serial >> 3
        if index >= len(bits):
            grow = max(index + 1, 2 * len(bits), 4096)
            bits.extend(bytes(min(grow, (self._seen_bits_cap >> 3) + 1) - len(bits)))
        mask = 1 << (serial & 7)
        if bits[index] & mask:
            return True
        bits[index] |= mask
        return False


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


# --- output ------------------------------------------------------------------------------------

# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...) can leak
# data, =cmd|... has run commands): OWASP "CSV Injection" recommends a leading single quote,
# which makes the cell plain text. It also changes values such as "-5" into "'-5".
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def write_output_csv(
    header: CsvHeader,
    rows: Iterable[OutputRow],
    *,
    include_header: bool = True,
    chunk_bytes: int = 64 * 1024,
) -> Iterator[bytes]:
    """Stream the output CSV as UTF-8 chunks of about ``chunk_bytes``.

    ``include_header=False`` leaves out the header line, to write a long file page by page.

    Columns: the input header's columns as written, then "Output Image Urls" and "Errors".
    Output URLs are positional (an empty item where an image has no output); errors are joined
    by "; ". Cells that a spreadsheet would run as a formula get a leading single quote.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # CRLF line endings, minimal quoting
    ncols = len(header.columns)
    extra_indices = header.extra_indices
    if include_header:
        columns = (*header.columns, OUTPUT_URLS_COLUMN, ERRORS_COLUMN)
        writer.writerow([_neutralise(c) for c in columns])
    for row in rows:
        if len(row.output_urls) != len(row.input_urls) or len(row.extra) != len(extra_indices):
            raise ImgcoreError(
                f"output row {row.serial}: {len(row.input_urls)} input URLs,"
                f" {len(row.output_urls)} output URLs, {len(row.extra)} extra values"
                f" for {len(extra_indices)} extra columns",
                reason="output_row_mismatch",
            )
        cells = [""] * ncols
        cells[header.serial_index] = str(row.serial)
        cells[header.name_index] = row.name
        cells[header.urls_index] = ",".join(row.input_urls)
        for index, value in zip(extra_indices, row.extra, strict=True):
            cells[index] = value
        cells.append(",".join(url or "" for url in row.output_urls))
        cells.append("; ".join(row.errors))
        writer.writerow([_neutralise(c) for c in cells])
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()
