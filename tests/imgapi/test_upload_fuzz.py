"""Fuzzing ``POST /upload``: generated CSVs in generated requests, checked against an oracle.

Hypothesis builds multipart forms by hand (fields in any order, extra and repeated fields,
odd part types, truncated bodies) and raw bodies under assorted content types, around CSVs
mixing valid rows, broken quoting, other encodings, huge and empty cells and header
spellings. Whatever the request, the app must never answer 5xx; every error is an RFC 9457
problem document; a 202 comes exactly when imgcore's own parser, run on the same bytes,
accepts the CSV (and the request around it is well formed); and a rejected upload stores
nothing. One app (Engine and executor running) serves the whole module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from imgapi import Settings, create_app
from imgcore import WebhookURLError
from imgcore._csvio import CsvParser, CsvValidationError
from imgcore._netguard import validate_webhook_url
from litestar import Litestar
from litestar.testing import TestClient
from support.origin import OriginServer
from support.server import WebhookReceiver, core_config

PROBLEM = "application/problem+json"
MAX_UPLOAD = 200_000
BOUNDARY = "fuzz-boundary-7f3a9c"
FUZZ = settings(max_examples=50, deadline=None, derandomize=True)


@dataclass
class Env:
    """The app under test and what the oracle needs to know about it."""

    client: TestClient[Litestar]
    settings: Settings
    root: Path
    origin: OriginServer
    hooks: WebhookReceiver


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, _origin_server: OriginServer) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("upload-fuzz")
    settings = Settings(core=core_config(root), log_format="none", max_upload_bytes=MAX_UPLOAD)
    with (
        WebhookReceiver() as hooks,
        TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client,
    ):
        yield Env(client, settings, root, _origin_server, hooks)


def stored(root: Path) -> tuple[int, int, int]:
    """Rows in requests, products and images, read with sqlite3 (not through the app)."""
    with sqlite3.connect(root / "imgcore.sqlite3") as db:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("requests", "products", "images")
        )


# --- the CSVs ------------------------------------------------------------------------------

# Spellings of the required columns (the parser ignores case, spaces and punctuation), and
# near misses it must refuse.
SERIAL_NAMES = ["S. No.", "sno", "Sr No", "SERIAL NUMBER", "serial_no", "Sl. No", "S No"]
NAME_NAMES = ["Product Name", "product_name", "PRODUCT", "name", "Product-Name"]
URLS_NAMES = ["Input Image Urls", "input image url(s)", "Image URLs", "urls", "INPUTIMAGES"]
NEAR_MISSES = ["Serial #2", "Prodct Name", "Input Image", "", "Image Url List"]


def _cell(text: str, always: bool) -> str:
    if always or any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def weighted(common: object, *rare: object, weight: int = 1) -> st.SearchStrategy[object]:
    """``common`` ``weight`` times out of ``weight + len(rare)``, else one of ``rare``."""
    return st.sampled_from([common] * weight + list(rare))


CSV_DAMAGE = [
    "bad header",
    "bad url",
    "no url",
    "bad serial",
    "repeated serial",
    "blank name",
    "stray quote",
    "open quote",
    "huge cell",
    "big cell",
    "latin-1",
    "utf-16",
    "bom",
    "nul",
    "no rows",
    "garbage",
]


@st.composite
def csv_files(draw: st.DrawFn, origin: OriginServer) -> bytes:
    """A CSV: valid about half the time, else with one problem (some of which are harmless)."""
    damage = draw(weighted("none", *CSV_DAMAGE, weight=len(CSV_DAMAGE)))
    header = [
        draw(st.sampled_from(SERIAL_NAMES)),
        draw(st.sampled_from(NAME_NAMES)),
        draw(st.sampled_from(URLS_NAMES)),
    ]
    if damage == "bad header":
        header[draw(st.integers(0, 2))] = draw(st.sampled_from(NEAR_MISSES))
    order = draw(st.permutations(range(3)))
    extras = draw(st.lists(st.sampled_from(["Notes", "SKU", "Colour"]), max_size=2, unique=True))
    url = st.integers(0, 99).map(lambda n: origin.url(f"/status/404?fuzz={n}"))
    text_cell = st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
    )
    name = text_cell.filter(str.strip)
    count = draw(st.integers(0 if damage == "no rows" else 1, 6))
    first = draw(st.integers(1, 10**6))
    rows = [
        [
            str(first + i),
            draw(name),
            ",".join(draw(st.lists(url, min_size=1, max_size=3))),
            *[draw(text_cell) for _ in extras],
        ]
        for i in range(count)
    ]
    if rows and damage in ("bad url", "no url", "bad serial", "repeated serial", "blank name"):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        if damage == "bad url":
            bad = ["ftp://127.0.0.1/x.jpg", "not a url", "http://", "http://u:p@127.0.0.1/x"]
            row[2] += "," + draw(st.sampled_from(bad))
        elif damage == "no url":
            row[2] = draw(st.sampled_from(["", " , ", ","]))
        elif damage == "bad serial":
            row[0] = draw(st.sampled_from(["0", "-1", "x", "1.5", ""]))
        elif damage == "repeated serial":
            rows.append(list(row))
        else:
            row[1] = draw(st.sampled_from(["", "   "]))
    quote_all = draw(st.booleans())
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    lines = [[header[i] for i in order] + extras]
    lines += [[row[i] for i in order] + row[3:] for row in rows]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(1, len(lines))), [""])  # a blank line
    text = newline.join(",".join(_cell(c, quote_all) for c in line) for line in lines)
    text += draw(st.sampled_from([newline, "", newline * 2]))
    if damage == "stray quote":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + '"' + text[at:]
    elif damage == "open quote":
        text += '"unterminated'
    elif damage in ("huge cell", "big cell"):
        size = 70_000 if damage == "huge cell" else 1_000
        text += f'{newline}{first + 100},"{"x" * size}",{origin.url("/status/404")}{newline}'
    if damage == "latin-1":
        return (text + "é").encode("latin-1", errors="replace")
    if damage == "utf-16":
        return text.encode("utf-16")
    data = text.encode()
    if damage == "bom":
        return b"\xef\xbb\xbf" + data
    if damage == "nul":
        at = draw(st.integers(0, len(data)))
        return data[:at] + b"\x00" + data[at:]
    if damage == "garbage":
        return draw(st.binary(min_size=1, max_size=200))
    return data


def oracle(settings: Settings, data: bytes) -> list[int] | None:
    """imgcore's verdict on ``data``: the URL count of each product, or None if invalid."""
    parser = CsvParser(settings.core.csv_limits())
    try:
        products = parser.feed(data) + parser.finish()
    except CsvValidationError:
        return None
    return [len(product.urls) for product in products]


# --- webhook URLs --------------------------------------------------------------------------


def webhook_urls(hooks: WebhookReceiver) -> st.SearchStrategy[str]:
    """Good and bad webhook URLs; every host is an address (nothing asks a DNS server)."""
    return st.sampled_from(
        [hooks.url] * 4
        + [
            f" {hooks.url} ",
            "",
            "   ",
            "ftp://127.0.0.1/hook",
            "http://127.0.0.2:9/hook",  # outside the allow-list
            "http://user:pw@127.0.0.1:9/hook",
            "http://127.0.0.1:99999/hook",
            "http://[::1]:9/hook",
            "not a url",
            "http://127.0.0.1/" + "x" * 2100,
            "http://[::ffff:127.0.0.2]:9/hook",  # the same, IPv4-mapped
        ]
    )


def webhook_ok(settings: Settings, url: str | None) -> bool:
    """imgcore's verdict on a webhook URL (None: no webhook, fine)."""
    if url is None:
        return True

    async def check() -> None:
        await validate_webhook_url(url, allow=settings.core.fetch_allow)

    try:
        anyio.run(check)
    except WebhookURLError:
        return False
    return True


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


# --- requests ------------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass
class Upload:
    """A generated request and what the app must answer to it."""

    path: str
    content_type: str | None
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    #: The CSV the app should store (None: the app must refuse the request).
    csv: bytes | None = None
    #: The refusal that the request around the CSV decides (None: the CSV decides).
    status: int | None = None


def multipart(parts: list[Part], *, boundary: str = BOUNDARY) -> tuple[bytes, int]:
    """The encoded form, and the offset where the first ``file`` part's content starts."""
    out = bytearray()
    file_at = -1
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if part.content_type is not None:
            out += f"Content-Type: {part.content_type}\r\n".encode()
        out += b"\r\n"
        if part.name == "file" and file_at < 0:
            file_at = len(out)
        out += part.value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), file_at


# Labels a browser or curl may give a CSV file, with parameters and in any case.
CSV_TYPES = [
    None,
    "text/csv",
    "TEXT/CSV",
    "text/csv; charset=utf-8",
    "application/vnd.ms-excel",
    "application/octet-stream",
    "text/plain",
]
NOT_CSV_TYPES = ["image/png", "application/json", "application/pdf", "text/html"]
RAW_NOT_CSV_TYPES = [
    None,
    *NOT_CSV_TYPES,
    "multipart/form-data",  # without its boundary
    "application/x-www-form-urlencoded",
    "text/csvx",
]


FORM_FAULTS = [
    "not a CSV type",
    "webhook after the file",
    "webhook in form and query",
    "second file",
    "truncated",
    "too large",
]


@st.composite
def form_uploads(draw: st.DrawFn, env: Env, fault: str | None) -> Upload:
    """A multipart form around a generated CSV, well formed or with ``fault``."""
    csv = draw(csv_files(env.origin))
    types = NOT_CSV_TYPES if fault == "not a CSV type" else CSV_TYPES
    file_type = draw(st.sampled_from(types))
    filename = draw(st.sampled_from(["p.csv", "C:\\Users\\me\\shop.csv", "", "ünï.csv"]))
    parts = [Part("file", csv, filename, file_type)]
    extras = draw(st.lists(st.sampled_from(["note", "csrf", "submit", "FILE"]), max_size=3))
    for name in extras:  # unknown fields, anywhere: ignored
        parts.insert(draw(st.integers(0, len(parts))), Part(name, b"ignored"))
    hooks = webhook_urls(env.hooks)
    hook = draw(hooks) if fault == "webhook in form and query" or draw(st.booleans()) else None
    hook_after_file = fault == "webhook after the file"
    if hook_after_file:
        hook = env.hooks.url
    if hook is not None:
        file_index = next(i for i, part in enumerate(parts) if part.name == "file")
        at = len(parts) if hook_after_file else draw(st.integers(0, file_index))
        parts.insert(at, Part("webhook_url", hook.encode()))
    query_hook = None
    if fault == "webhook in form and query" or draw(weighted(False, True, weight=3)):
        query_hook = draw(hooks)
    second_file = fault == "second file"
    if second_file:
        parts.append(Part("file", b"S. No.,Product Name,Input Image Urls\r\n", "b.csv"))
    if fault == "too large":
        parts.insert(draw(st.integers(0, len(parts))), Part("padding", b"p" * (MAX_UPLOAD + 1)))
    whole, file_at = multipart(parts)
    cut = draw(st.integers(0, len(whole) - 3)) if fault == "truncated" else len(whole)
    body = whole[:cut]
    query = {"webhook_url": query_hook} if query_hook is not None else {}
    upload = Upload(
        path=draw(st.sampled_from(["/upload", "/api/upload/"])),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        body=body,
        query=query,
    )
    # The app's checks, in its order: size, the form up to the file, the file's type, the
    # webhook(s), then the CSV and what follows it.
    form_hook = None if hook_after_file else _blank_to_none(hook)
    url_hook = _blank_to_none(query_hook)
    refusals = [
        (len(body) > MAX_UPLOAD, 413),
        (cut < file_at, 400),  # the body ends before the file does
        (file_type is not None and file_type.lower().split(";")[0] not in CSV_MEDIA, 415),
        (form_hook is not None and url_hook is not None, 400),
        (not webhook_ok(env.settings, form_hook or url_hook), 400),
        (cut < len(whole) or second_file or hook_after_file, 400),
    ]
    upload.status = next((status for refused, status in refusals if refused), None)
    if upload.status is None:
        upload.csv = csv
    return upload


CSV_MEDIA = {t.lower().split(";")[0] for t in CSV_TYPES if t is not None}


@st.composite
def raw_uploads(draw: st.DrawFn, env: Env, labelled_csv: bool) -> Upload:
    """A bare generated CSV, under a CSV content type or another (or none)."""
    body = draw(csv_files(env.origin))
    if draw(weighted(False, True, weight=15)):
        body += b"\r\n" * (MAX_UPLOAD // 2 + 1)
    if labelled_csv:
        content_type = draw(st.sampled_from([t for t in CSV_TYPES if t is not None]))
    else:
        content_type = draw(st.sampled_from(RAW_NOT_CSV_TYPES))
    hook = draw(webhook_urls(env.hooks)) if draw(weighted(False, True, weight=2)) else None
    upload = Upload(
        path=draw(st.sampled_from(["/upload", "/api/upload"])),
        content_type=content_type,
        body=body,
        query={"webhook_url": hook} if hook is not None else {},
    )
    media = content_type.lower().split(";")[0].strip() if content_type else None
    if len(body) > MAX_UPLOAD:
        upload.status = 413
    elif content_type == "multipart/form-data":
        upload.status = 400  # no boundary
    elif media not in CSV_MEDIA:
        upload.status = 415
    elif webhook_ok(env.settings, _blank_to_none(hook)):
        upload.csv = body
    else:
        upload.status = 400
    return upload


# --- the property --------------------------------------------------------------------------


def check(env: Env, upload: Upload) -> None:
    before = stored(env.root)
    headers = {"Content-Type": upload.content_type} if upload.content_type else {}
    response = env.client.post(
        upload.path, content=upload.body, headers=headers, params=upload.query
    )
    status = response.status_code
    event(f"{status} {response.json().get('reason', '') if status >= 400 else ''}")
    assert status < 500, response.text
    expected = oracle(env.settings, upload.csv) if upload.csv is not None else None
    if status >= 400:
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["status"] == status
        assert problem["type"].startswith("urn:imgapi:problem:")
        assert problem["title"] and problem["detail"]
        assert stored(env.root) == before, "a refused upload left rows behind"
    if upload.status is not None:
        assert status == upload.status, response.text
        return
    if expected is None:
        assert status == 400, response.text
        assert response.json()["reason"] == "invalid_csv", response.text
        return
    assert status == 202, response.text
    requests, products, images = stored(env.root)
    assert (requests, products, images) == (
        before[0] + 1,
        before[1] + len(expected),
        before[2] + sum(expected),
    )
    status_doc = env.client.get(f"/status/{response.json()['request_id']}").json()
    assert (status_doc["total"], status_doc["page"]["total_products"]) == (
        sum(expected),
        len(expected),
    )


@pytest.mark.parametrize("fault", [None, *FORM_FAULTS])
@FUZZ
@given(data=st.data())
def test_form_uploads_are_accepted_exactly_when_the_csv_is_valid(
    env: Env, fault: str | None, data: st.DataObject
) -> None:
    check(env, data.draw(form_uploads(env, fault)))


@pytest.mark.parametrize("labelled_csv", [True, False])
@FUZZ
@given(data=st.data())
def test_raw_uploads_are_accepted_exactly_when_the_csv_is_valid(
    env: Env, labelled_csv: bool, data: st.DataObject
) -> None:
    check(env, data.draw(raw_uploads(env, labelled_csv)))
