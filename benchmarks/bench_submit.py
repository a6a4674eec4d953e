"""How long submitting a large CSV takes: validate + insert every row in one transaction.

100,000 rows x 3 URLs (300,000 images) into SQLite (the embedded default). Prints figures.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio
from imgcore import Config, Engine


def make_rows(n: int) -> bytes:
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [
        f'{i},Product {i},"https://img.example.com/{i}/a.jpg,'
        f'https://img.example.com/{i}/b.jpg,https://img.example.com/{i}/c.jpg"'
        for i in range(1, n + 1)
    ]
    return ("\n".join(lines) + "\n").encode()


async def main() -> None:
    data = make_rows(100_000)
    work = Path(tempfile.mkdtemp(prefix="imgcore-submit-"))
    config = Config(database_url=f"sqlite+aiosqlite:///{work}/db.sqlite3")
    async with Engine(config) as engine:
        started = time.perf_counter()
        request_id = await engine.submit_csv(data)
        wall = time.perf_counter() - started
        info = await engine.status(request_id)
    print(
        f"submit 100,000 rows / {info.total:,} URLs ({len(data) / 1e6:.1f} MB) on SQLite: "
        f"{wall:.2f}s = {info.total_products / wall:,.0f} rows/s (target < 10 s)"
    )


if __name__ == "__main__":
    anyio.run(main)
