"""Structured logs: every line logged while handling a request carries its id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from imgapi.logs import JsonFormatter, KeyValueFormatter, RequestIdFilter, http_request_id
from litestar import Litestar
from litestar.testing import AsyncTestClient
from support.csvgen import make_csv, photo_urls
from support.origin import OriginServer


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Root-logger output as JSON lines, INFO and above."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.anyio
async def test_lines_about_an_upload_carry_its_http_request_id(
    client: AsyncTestClient[Litestar], origin: OriginServer, json_lines: io.StringIO
) -> None:
    response = await client.post(
        "/upload", files={"file": ("p.csv", make_csv([photo_urls(origin, 1)]), "text/csv")}
    )
    rid = response.headers["x-request-id"]
    request_id = response.json()["request_id"]
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    mine = [line for line in lines if line.get("http_request_id") == rid]
    by_logger = {line["logger"]: line for line in mine}
    assert by_logger["imgapi.upload"]["request_id"] == request_id
    assert request_id in by_logger["imgcore.engine"]["msg"]
    access = by_logger["imgapi.access"]
    assert (access["status"], access["route"], access["method"]) == (202, "/upload", "POST")


def test_a_json_line_has_time_level_logger_message_and_extras() -> None:
    record = logging.LogRecord("imgapi.x", logging.WARNING, "f.py", 1, "hello %s", ("you",), None)
    record.reason = "why"
    token = http_request_id.set("r1")
    try:
        RequestIdFilter().filter(record)
    finally:
        http_request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning"
    assert (line["logger"], line["msg"], line["reason"]) == ("imgapi.x", "hello you", "why")
    assert line["http_request_id"] == "r1"
    assert line["ts"].endswith("+00:00")


def test_a_key_value_line_quotes_values_with_spaces() -> None:
    record = logging.LogRecord("imgapi.x", logging.INFO, "f.py", 1, "done", (), None)
    record.path = "/a b"
    line = KeyValueFormatter().format(record)
    assert line.endswith('info    imgapi.x done path="/a b"')
