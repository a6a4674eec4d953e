"""Schemathesis over the whole OpenAPI schema, every check on: the app must match its schema.

The schema is the one the app serves at ``/schema/openapi.json`` (checked below), loaded at
import so that pytest can make one test per operation. Each operation is run against the
real app in process (ASGI: the Engine and its executor run), once open and once with API
keys (schemathesis then sends the key and probes that a missing or wrong key is refused),
then, with fewer examples, against ``imgapi serve`` over HTTP on 127.0.0.1. Generated
bodies are garbage as far as CSVs go, so real CSVs are uploaded too, and the request they
create is read back through the status, output CSV and media operations, every response
validated.

Failures are bugs in the app or its schema; fix those, not the checks.
"""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from imgapi import Settings, create_app
from schemathesis.python import asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer
from support.server import ApiServer, core_config, server_env

KEY = "schemathesis-key-0123456789"
PROBLEM = "application/problem+json"
BEARER = {"Authorization": f"Bearer {KEY}"}
MAX_UPLOAD = 100_000

# Every check is enabled by default; only what a JSON Schema cannot say is configured here:
# a body that matches the schema may still be an invalid CSV (400) or too large (413); a
# list cursor is opaque (any string the server did not make is a 400), and `after` and
# `before` exclude each other.
CONFIG = """
[generation]
deterministic = true

[[operations]]
include-path-regex = "upload$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "413"]

[[operations]]
include-path-regex = "^/(api/)?requests$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]
"""
AUTH = f"""
[auth.openapi.bearer]
bearer = "{KEY}"
"""

FAST = settings(max_examples=30, deadline=None, derandomize=True)
# Over HTTP each example is a real round trip to the server process.
FEWER = settings(max_examples=10, deadline=None, derandomize=True)

# The apps' data lives here (created by the fixtures, removed after the module).
ROOT = Path(tempfile.gettempdir()) / f"imgapi-schemathesis-{uuid.uuid4().hex}"


def _settings(root: Path, keys: tuple[str, ...]) -> Settings:
    return Settings(
        core=core_config(root), log_format="none", max_upload_bytes=MAX_UPLOAD, api_keys=keys
    )


def _schema(keys: tuple[str, ...], config: str, *, in_process: bool) -> OpenApiSchema:
    app = create_app(_settings(ROOT / ("keyed" if keys else "open"), keys))
    raw: dict[str, Any] = app.openapi_schema.to_schema()
    schema = schemathesis.openapi.from_dict(raw, config=schemathesis.Config.from_str(config))
    if in_process:
        # What from_asgi() does; the app's lifespan starts with the first request.
        schema.app = app
    return schema


OPEN = _schema((), CONFIG, in_process=True)
KEYED = _schema((KEY,), CONFIG + AUTH, in_process=True)
OVER_HTTP = _schema((KEY,), CONFIG + AUTH, in_process=False)


@pytest.fixture(scope="module", autouse=True)
def _apps() -> Iterator[None]:
    """The data directories of the in-process apps; their lifespans end with the module."""
    for mode in ("open", "keyed"):
        (ROOT / mode).mkdir(parents=True)
    try:
        yield
    finally:
        asgi.shutdown_lifespans()
        shutil.rmtree(ROOT, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``imgapi serve`` with an API key, on 127.0.0.1."""
    root = tmp_path_factory.mktemp("schemathesis-http")
    env = server_env(root, IMGAPI_MAX_UPLOAD_BYTES=str(MAX_UPLOAD), IMGAPI_API_KEYS=KEY)
    with ApiServer(env=env, cwd=root) as running:
        yield running


def problem_document(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error, undocumented ones (405…) included, is an RFC 9457 problem document."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == PROBLEM, f"{response.status_code} answered as {content_type!r}"
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:imgapi:problem:")
    assert body["title"]
    instance = body["instance"]
    assert instance.isascii() and instance.isprintable() and " " not in instance, instance
    assert unquote(instance) == unquote(urlsplit(response.request.url).path)


def _resolves_no_name(case: schemathesis.Case) -> None:
    """Skip cases whose webhook URL names a host: checking it would ask a DNS server.

    The machine's resolver is not on loopback, and tests send traffic nowhere else.
    """
    values = [case.query.get("webhook_url") if isinstance(case.query, dict) else None]
    if isinstance(case.body, dict):
        values.append(case.body.get("webhook_url"))
    for value in values:
        if not isinstance(value, str):
            continue
        try:
            host = urlsplit(value.strip()).hostname
        except ValueError:
            continue
        if not host or host == "localhost":
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            reject()


def test_the_schema_tested_is_the_one_served(server: ApiServer) -> None:
    served = httpx.get(server.url("/schema/openapi.json")).json()
    assert served == OVER_HTTP.raw_schema
    assert httpx.get(server.url("/schema/openapi.yaml")).status_code == 200


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.links += [value for name, value in attrs if name in ("href", "src") and value]


def test_the_schema_page_works_offline(server: ApiServer) -> None:
    page = httpx.get(server.url("/schema"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    found = _Links()
    found.feed(page.text)
    assert not found.tags & {"script", "link", "img", "iframe"}
    style = page.text.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "url(" not in style and "@import" not in style
    assert sorted(found.links) == ["/schema/openapi.json", "/schema/openapi.yaml"]
    for link in found.links:
        assert httpx.get(server.url(link)).status_code == 200
    for path, item in OVER_HTTP.raw_schema["paths"].items():
        for method in item:
            assert f"{method.upper()} {escape(path)}" in page.text


@OPEN.parametrize()
@FAST
def test_open_api_matches_its_schema(case: schemathesis.Case) -> None:
    _resolves_no_name(case)
    case.call_and_validate(additional_checks=[problem_document])


@KEYED.parametrize()
@FAST
def test_keyed_api_matches_its_schema(case: schemathesis.Case) -> None:
    _resolves_no_name(case)
    case.call_and_validate(additional_checks=[problem_document])


@OVER_HTTP.parametrize()
@FEWER
def test_the_served_api_matches_its_schema_over_http(
    case: schemathesis.Case, server: ApiServer
) -> None:
    _resolves_no_name(case)
    case.call_and_validate(base_url=server.base_url, additional_checks=[problem_document])


# --- real CSVs -----------------------------------------------------------------------------


def _call(target: dict[str, Any], case: schemathesis.Case) -> schemathesis.Response:
    """Send ``case`` (in process, or to ``target["base_url"]``) and run every check."""
    return case.call_and_validate(additional_checks=[problem_document], **target)


def _run_request_through(
    schema: OpenApiSchema,
    origin: OriginServer,
    target: dict[str, Any],
    *,
    media_type: str,
    tag: str,
) -> None:
    """Upload a real CSV, then read the request back through every operation that shows it."""
    csv = make_csv([photo_urls(origin, 2, tag), photo_urls(origin, 1, tag + "b")])
    upload = schema["/upload"]["POST"]
    if media_type == "text/csv":
        case = upload.Case(body=csv, media_type="text/csv", query={"filename": f"{tag}.csv"})
    else:
        case = upload.Case(body={"file": csv}, media_type="multipart/form-data")
    accepted = _call(target, case)
    assert accepted.status_code == 202, accepted.text
    request_id = accepted.json()["request_id"]

    status = schema["/status/{request_id}"]["GET"]
    deadline = time.monotonic() + 60
    while True:
        body = _call(target, status.Case(path_parameters={"request_id": request_id}))
        if body.json()["status"] in ("Completed", "Failed"):
            break
        assert time.monotonic() < deadline, body.json()["status"]
        time.sleep(0.1)
    assert body.json()["status"] == "Completed", body.json()
    page = _call(
        target,
        status.Case(path_parameters={"request_id": request_id}, query={"per_page": 1}),
    )
    assert page.json()["page"]["next"] is not None

    output = schema["/status/{request_id}/output.csv"]["GET"]
    csv_out = _call(target, output.Case(path_parameters={"request_id": request_id}))
    assert csv_out.status_code == 200

    media = schema["/media/{key}"]["GET"]
    output_url = body.json()["products"][0]["images"][0]["output_url"]
    key = output_url.split("/media/", 1)[1]
    image = _call(target, media.Case(path_parameters={"key": key}))
    assert image.status_code == 200
    etag = image.headers["etag"][0]
    cached = media.Case(path_parameters={"key": key}, headers={"If-None-Match": etag})
    assert _call(target, cached).status_code == 304


@pytest.mark.parametrize("media_type", ["multipart/form-data", "text/csv"])
def test_a_real_request_is_valid_through_every_operation_open(
    origin: OriginServer, media_type: str
) -> None:
    _run_request_through(OPEN, origin, {}, media_type=media_type, tag=f"open-{media_type}")


@pytest.mark.parametrize("media_type", ["multipart/form-data", "text/csv"])
def test_a_real_request_is_valid_through_every_operation_keyed(
    origin: OriginServer, media_type: str
) -> None:
    # An explicit key: ignored_auth then checks that no key and a wrong key answer 401.
    target = {"headers": BEARER}
    _run_request_through(KEYED, origin, target, media_type=media_type, tag=f"key-{media_type}")


def test_a_real_request_is_valid_through_every_operation_over_http(
    origin: OriginServer, server: ApiServer
) -> None:
    target = {"headers": BEARER, "base_url": server.base_url}
    _run_request_through(OVER_HTTP, origin, target, media_type="multipart/form-data", tag="http")


@pytest.fixture(scope="module")
def shared_origin(_origin_server: OriginServer) -> OriginServer:
    """The origin, for Hypothesis tests (which may not take function-scoped fixtures)."""
    return _origin_server


@pytest.mark.parametrize(("schema", "target"), [(OPEN, {}), (KEYED, {"headers": BEARER})])
@FAST
@given(data=st.data())
def test_generated_csvs_get_answers_that_match_the_schema(
    shared_origin: OriginServer,
    schema: OpenApiSchema,
    target: dict[str, Any],
    data: st.DataObject,
) -> None:
    """Real CSVs, some valid, some not: 202 or a 400 listing the problems, as documented."""
    cell = st.sampled_from(
        [
            shared_origin.url("/status/404?csv"),
            shared_origin.url("/status/404?other"),
            "ftp://127.0.0.1/x.jpg",
            "not a url",
            "",
        ]
    )
    csv = make_csv(data.draw(st.lists(st.lists(cell, max_size=3), max_size=4)))
    upload = schema["/upload"]["POST"]
    if data.draw(st.booleans()):
        case = upload.Case(body={"file": csv}, media_type="multipart/form-data")
    else:
        case = upload.Case(body=csv, media_type="text/csv")
    response = _call(target, case)
    assert response.status_code in (202, 400)
