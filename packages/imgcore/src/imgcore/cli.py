"""The ``imgcore`` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from imgcore._compression.tuning import limit_malloc_arenas
from imgcore._csvio import CsvValidationError
from imgcore._version import __version__
from imgcore.config import Config
from imgcore.errors import ImgcoreError

__all__ = ["main"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgcore", description="Download, compress and store the images listed in a CSV."
    )
    parser.add_argument("--version", action="version", version=f"imgcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("process", help="process a CSV straight into a directory (no database)")
    p.add_argument("csv", type=Path, metavar="INPUT.csv")
    p.add_argument("--out-dir", type=Path, required=True, help="where the images go")
    p.add_argument("--output-csv", type=Path, help="output CSV path (default OUT_DIR/output.csv)")
    p.add_argument("--quality", type=int, help="output quality 1-95 (default 50)")
    p.add_argument("--concurrency", type=int, help="downloads in flight (default 32)")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CIDR|HOST",
        help="let downloads reach this non-public address (repeatable; adds to "
        "IMGCORE_FETCH_ALLOW)",
    )
    p.add_argument("--base-url", help="write output URLs under this URL instead of file paths")

    s = sub.add_parser("submit", help="store a CSV as a new request and print its id")
    s.add_argument("csv", type=Path, metavar="INPUT.csv")
    s.add_argument("--webhook-url", help="called when the request finishes")
    s.add_argument("--preset", help="write each image as this preset (default: default)")
    s.add_argument("--wait", action="store_true", help="process it now and wait until it ends")

    st = sub.add_parser("status", help="print a request's status as JSON")
    st.add_argument("request_id")

    o = sub.add_parser("output", help="write a request's output CSV")
    o.add_argument("request_id")
    o.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")

    sub.add_parser("worker", help="process pending images until stopped (SIGINT/SIGTERM)")
    sub.add_parser("plugins", help="list the loaded plugins and their hooks")
    sub.add_parser("presets", help="print the presets a request may choose, as JSON")

    d = sub.add_parser("db", help="database schema")
    dsub = d.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dsub.add_parser("upgrade", help="apply the migrations that ship with this version")
    dsub.add_parser("current", help="print the schema revision of the database")
    return parser


def _tune_memory() -> None:
    try:
        threads = Config.from_env().compress_pool == "thread"
    except ImgcoreError:
        threads = False  # the command reports the setting's error itself
    limit_malloc_arenas(compresses=threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    _tune_memory()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return anyio.run(_dispatch, args)
    except CsvValidationError as exc:
        # Messages quote the input (URLs, header names): escaped, or "[/x]" in a CSV would
        # be read as rich markup and crash the error report itself.
        err.print(f"[red]invalid CSV:[/red] {escape(exc.message)}")
        for issue in exc.issues:
            where = f"row {issue.row}" if issue.row is not None else "file"
            column = f", column {issue.column!r}" if issue.column else ""
            err.print(
                f"  {escape(where + column)}: {escape(issue.message)} [dim]({issue.reason})[/dim]"
            )
        if exc.truncated:
            err.print("  … more problems not shown")
        return 2
    except ImgcoreError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        return 2
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "process":
        return await _process(args)
    if command == "plugins":
        return _plugins()
    if command == "db":
        return await _db(args)
    return await _with_engine(args)


async def _process(args: argparse.Namespace) -> int:
    from imgcore._codecs import select_codecs
    from imgcore._offline import ProcessSummary, process_csv
    from imgcore._plugins import create_plugin_manager

    config = Config.from_env()
    changes: dict[str, object] = {"fetch_allow": (*config.fetch_allow, *args.allow)}
    if args.quality is not None:
        changes["quality"] = args.quality
    if args.concurrency is not None:
        changes["fetch_concurrency"] = args.concurrency
    config = config.replace(**changes)
    codecs = select_codecs(create_plugin_manager(), config.codec)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    task = progress.add_task("images", total=None)

    def advance(summary: ProcessSummary) -> None:
        progress.update(task, completed=summary.images)

    with progress:
        summary = await process_csv(
            args.csv,
            args.out_dir,
            output_csv=args.output_csv,
            compress=config.compress_options(),
            codecs=codecs,
            fetch=config.fetch_options(),
            limits=config.csv_limits(),
            base_url=args.base_url,
            workers=config.workers or None,
            on_image=advance,
        )
    for failure in summary.failures:
        err.print(
            f"[red]failed[/red] row {failure.row} (S. No. {failure.serial}) "
            f"{escape(failure.url)}: {escape(failure.message)}"
        )
    saved = (1 - summary.ratio) * 100 if summary.input_bytes else 0.0
    err.print(
        f"{summary.ok} ok, {summary.failed} failed of {summary.images} images "
        f"({summary.products} products) in {summary.seconds:.1f}s; "
        f"{_size(summary.input_bytes)} → {_size(summary.output_bytes)} "
        f"({saved:.0f}% saved)"
    )
    return 1 if summary.failed else 0


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _plugins() -> int:
    from imgcore._codecs import installed_codecs, select_codecs
    from imgcore._plugins import create_plugin_manager, describe_plugins

    pm = create_plugin_manager()
    for info in describe_plugins(pm):
        kind = "builtin" if info.builtin else (info.version or "")
        out.print(f"{info.name} [dim]{kind}[/dim]: {', '.join(info.hooks)}")
    codecs = installed_codecs(pm)
    chosen = select_codecs(pm, Config.from_env().codec)[0].name if codecs else None
    if codecs:
        out.print("codecs (* in use, IMGCORE_CODEC picks another):")
    for codec in codecs:
        spec = codec.spec
        mark = "*" if spec.name == chosen else " "
        out.print(
            f"{mark} {spec.name} [dim](plugin {codec.plugin})[/dim] reads "
            f"{' '.join(sorted(spec.formats))}, writes {' '.join(sorted(spec.outputs))}",
            soft_wrap=True,
        )
    return 0


async def _db(args: argparse.Namespace) -> int:
    from imgcore._db import Database
    from imgcore._plugins import create_plugin_manager, plugin_migrations

    # Every branch: imgcore's own and those of the installed plugins.
    migrations = plugin_migrations(create_plugin_manager())
    database = Database(Config.from_env().database_url, migrations=migrations)
    try:
        if args.db_command == "upgrade":
            await database.upgrade()
            out.print(f"database at revision {', '.join(sorted(database.heads()))}")
        else:
            out.print(", ".join(sorted(await database.revisions())) or "(empty)")
    finally:
        await database.dispose()
    return 0


async def _with_engine(args: argparse.Namespace) -> int:
    from imgcore.engine import Engine

    async with Engine() as engine:
        if args.command == "submit":
            with args.csv.open("rb") as f:
                request_id = await engine.submit_csv(
                    f, webhook_url=args.webhook_url, filename=args.csv.name, preset=args.preset
                )
            out.print(str(request_id))
            if args.wait:
                async with engine.running():
                    info = await engine.wait(request_id)
                reused = f" ({info.reused} reused)" if info.reused else ""
                err.print(f"{info.status.value}: {info.done} done{reused}, {info.failed} failed")
                return 0 if info.status.value == "Completed" else 1
            return 0
        if args.command == "presets":
            presets = list(engine.presets.values())
            out.print(msgspec.json.encode(presets).decode(), soft_wrap=True)
            return 0
        if args.command == "status":
            info = await engine.status(args.request_id)
            out.print(msgspec.json.encode(info).decode(), soft_wrap=True)
            return 0
        if args.command == "output":
            stream = await engine.output_csv(args.request_id)
            sink = args.output.open("wb") if args.output else sys.stdout.buffer
            try:
                async for chunk in stream:
                    sink.write(chunk)
            finally:
                if args.output:
                    sink.close()
            return 0
        if args.command == "worker":
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with engine.running():
                    err.print(f"worker {engine.owner} running ({engine.config.executor})")
                    async for _ in signals:
                        err.print("stopping: unfinished images go back to the queue")
                        break
            return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
