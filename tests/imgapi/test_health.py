"""/healthz, /readyz, /metrics and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
from imgapi.runtime import Runtime
from imgcore.config import Config
from imgcore.engine import Engine
from litestar import Litestar
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def test_healthz_is_ok_while_the_executor_runs(client: Client) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_ok_when_the_database_answers(client: Client) -> None:
    response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_readyz_is_503_when_the_database_does_not_answer(
    client: Client, tmp_path: Path
) -> None:
    # Nothing listens on 127.0.0.1:9; constructing an Engine does not connect.
    down = Engine(
        Config(
            database_url="postgresql+asyncpg://imgcore@127.0.0.1:9/imgcore",
            storage_url=f"file://{tmp_path}/down",
        )
    )
    runtime: Runtime = client.app.state.runtime
    running, runtime.engine = runtime.engine, down
    try:
        response = await client.get("/readyz")
    finally:
        runtime.engine = running
        client.blocking_portal.call(down.aclose)
    assert response.status_code == 503
    assert response.json()["reason"] == "database_unavailable"


async def test_metrics_are_in_the_prometheus_text_format(client: Client) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE imgapi_http_requests_total counter" in response.text
    assert 'imgapi_http_requests_total{method="GET",route="/healthz",status="200"}' in response.text


async def test_every_response_carries_a_request_id(client: Client) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = (await client.get("/healthz", headers={"X-Request-ID": "bad id!"})).headers
    assert generated["x-request-id"] != "bad id!"
    assert len(generated["x-request-id"]) == 32


async def test_the_openapi_document_describes_problems_on_every_error(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    upload = schema["paths"]["/upload"]["post"]
    assert set(upload["responses"]) == {"202", "400", "401", "413", "415", "429"}
    assert "multipart/form-data" in upload["requestBody"]["content"]
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], path
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
