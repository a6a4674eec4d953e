"""The streaming body readers: size limit and multipart form, whatever the chunking."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from imgapi.form import UploadForm, limited
from imgapi.problems import ProblemError

pytestmark = pytest.mark.anyio

CSV = b'S. No.,Product Name,Input Image Urls\r\n1,A,"http://127.0.0.1/a.jpg"\r\n' * 50


def form_body(*parts: tuple[str, bytes, str | None]) -> bytes:
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        body += f"--xyz\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return body + b"--xyz--\r\n"


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_all(source: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in source])


async def test_limited_passes_a_body_of_exactly_the_limit() -> None:
    assert await read_all(limited(chunks(b"x" * 100, 7), 100)) == b"x" * 100


async def test_limited_raises_413_once_the_limit_is_passed() -> None:
    seen: list[bytes] = []

    async def consume() -> None:
        seen.extend([chunk async for chunk in limited(chunks(b"x" * 101, 10), 100)])

    with pytest.raises(ProblemError) as caught:
        await consume()
    assert (caught.value.status, caught.value.reason) == (413, "upload_too_large")


@pytest.mark.parametrize("size", [1, 7, 64, 65536])
async def test_the_file_arrives_intact_whatever_the_chunk_size(size: int) -> None:
    body = form_body(
        ("webhook_url", b"http://127.0.0.1:9/hook", None),
        ("note", b"ignored", None),
        ("file", CSV, "C:\\Users\\me\\shop.csv"),
    )
    form = UploadForm(chunks(body, size), "xyz")
    await form.read_until_file()
    assert form.fields == {"webhook_url": "http://127.0.0.1:9/hook"}
    assert form.filename == "shop.csv"
    assert await read_all(form.file_chunks()) == CSV
    await form.aclose()


async def test_a_field_after_the_file_other_than_webhook_url_is_ignored() -> None:
    body = form_body(("file", CSV, "p.csv"), ("note", b"late", None))
    form = UploadForm(chunks(body, 100), "xyz")
    await form.read_until_file()
    assert await read_all(form.file_chunks()) == CSV


async def test_an_oversized_field_is_400() -> None:
    body = form_body(("webhook_url", b"h" * 9000, None), ("file", CSV, "p.csv"))
    form = UploadForm(chunks(body, 100), "xyz")
    with pytest.raises(ProblemError) as caught:
        await form.read_until_file()
    assert caught.value.reason == "field_too_long"


async def test_too_many_parts_is_400() -> None:
    body = form_body(*[("n", b"v", None)] * 20, ("file", CSV, "p.csv"))
    form = UploadForm(chunks(body, 100), "xyz")
    with pytest.raises(ProblemError) as caught:
        await form.read_until_file()
    assert caught.value.reason == "invalid_multipart"
