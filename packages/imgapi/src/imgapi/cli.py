"""The ``imgapi`` command line: ``imgapi serve``, ``imgapi create-admin``,
``imgapi revoke-sessions``, ``imgapi keys``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from imgcore import ImgcoreError, limit_malloc_arenas

from imgapi import __version__
from imgapi.logs import configure_logging
from imgapi.settings import Settings, env_name

__all__ = ["main"]


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgapi", description="The imgcore HTTP API (Litestar on uvicorn)."
    )
    parser.add_argument("--version", action="version", version=f"imgapi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the API and the executor (embedded default: ./imgcore.sqlite3, ./media)",
    )
    serve.add_argument(
        "--host", default=settings.host, help=f"address to listen on (default {settings.host})"
    )
    serve.add_argument(
        "--port", type=int, default=settings.port, help=f"port (default {settings.port})"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=settings.workers,
        help=f"server processes, each with an executor (default {settings.workers})",
    )
    admin = sub.add_parser(
        "create-admin",
        help="create an admin user, or set its password (read from a prompt, or stdin if piped)",
    )
    admin.add_argument("username")
    revoke_sessions = sub.add_parser(
        "revoke-sessions",
        help="end every session of an admin user at once (logged-in browsers must log in again)",
    )
    revoke_sessions.add_argument("username")
    keys = sub.add_parser("keys", help="API clients and their keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser(
        "create", help="make a new key for client NAME (created if new); prints the key alone"
    )
    create.add_argument("name")
    keys_sub.add_parser("list", help="every client with its keys (their first characters)")
    revoke = keys_sub.add_parser("revoke", help="revoke client NAME's keys (they fail at once)")
    revoke.add_argument("name")
    revoke.add_argument(
        "--key", metavar="PREFIX", help="only the key starting with PREFIX (as `list` shows it)"
    )
    limit = keys_sub.add_parser(
        "limit", help="set client NAME's own limit on unfinished images (0: none)"
    )
    limit.add_argument("name")
    limit.add_argument("images", help="a number, or 'default' for IMGAPI_MAX_UNFINISHED_IMAGES")
    return parser


def _limit_value(text: str) -> int | None:
    if text == "default":
        return None
    if not text.isdigit():
        from imgapi.clients import ClientError

        raise ClientError(f"a limit is a number of images or 'default', not {text!r}")
    return int(text)


def keys_command(settings: Settings, args: argparse.Namespace) -> list[str]:
    """Run ``imgapi keys ACTION``; returns the lines to print."""
    import anyio
    from imgcore.engine import Engine

    from imgapi import clients

    async def run() -> list[str]:
        async with Engine(settings.core) as engine:
            database = engine.database
            if args.keys_command == "create":
                return [await clients.create_key(database, args.name)]
            if args.keys_command == "limit":
                images = _limit_value(args.images)
                await clients.set_limit(database, args.name, images)
                return [f"limit of {args.name!r}: {'default' if images is None else images}"]
            if args.keys_command == "revoke":
                count = await clients.revoke_keys(database, args.name, prefix=args.key)
                return [f"{count} key(s) of {args.name!r} revoked"]
            lines = []
            for client in await clients.list_clients(database):
                limit = client.max_unfinished_images
                lines.append(client.name + ("" if limit is None else f"  (limit {limit})"))
                for key in client.keys:
                    state = (
                        f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                    )
                    lines.append(
                        f"  {key.prefix}…  created {key.created_at:%Y-%m-%d %H:%M}  {state}"
                    )
            return lines

    return anyio.run(run)


def read_password(prompt: str = "Password: ") -> str:
    """The new password: typed twice at a terminal, else the first line of stdin."""
    from imgapi.admin.accounts import PasswordError

    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Password (again): ") != first:
            raise PasswordError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def create_admin(settings: Settings, username: str, password: str) -> bool:
    """Create the admin user or set its password; True if created."""
    import anyio
    from imgcore.engine import Engine

    from imgapi.admin.accounts import check_password_rules, save_admin

    check_password_rules(username, password)

    async def save() -> bool:
        async with Engine(settings.core) as engine:
            return await save_admin(engine.database, username, password)

    return anyio.run(save)


def revoke_sessions(settings: Settings, username: str) -> int:
    """End every session of the admin user; how many there were."""
    import anyio
    from imgcore.engine import Engine

    from imgapi.admin.accounts import revoke_sessions as revoke

    async def run() -> int:
        async with Engine(settings.core) as engine:
            return await revoke(engine.database, username)

    return anyio.run(run)


def _local_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run uvicorn with :func:`imgapi.app.create_app` until SIGINT/SIGTERM."""
    import uvicorn

    # Flat memory over many images: here, and in worker processes.
    limit_malloc_arenas(compresses=settings.core.compress_pool == "thread")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # Workers build their app from the environment: links must name the port chosen here.
    os.environ.setdefault(env_name("public_url"), _local_url(host, port))
    uvicorn.run(
        "imgapi.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # uvicorn's httptools protocol plus limits on request head size, head and body time,
        # and a lingering close (IMGAPI_MAX_HEADER_BYTES, …_HEADER_TIMEOUT, …_LINGER_*).
        http="imgapi.connection_limits:LimitedHttpProtocol",
        lifespan="on",
        log_config=None,  # our handler (configured in each process by create_app)
        access_log=False,  # our middleware logs one line per request
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``imgapi`` command."""
    try:
        settings = Settings.from_env()
    except ImgcoreError as exc:
        print(f"imgapi: {exc}", file=sys.stderr)
        return 2
    args = _parser(settings).parse_args(argv)
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        serve(settings, args.host, args.port, args.workers)
    elif args.command == "create-admin":
        try:
            created = create_admin(settings, args.username, read_password())
        except ImgcoreError as exc:
            print(f"imgapi: {exc}", file=sys.stderr)
            return 1
        print(f"admin user {args.username!r} {'created' if created else 'updated'}")
    elif args.command == "revoke-sessions":
        try:
            ended = revoke_sessions(settings, args.username)
        except ImgcoreError as exc:
            print(f"imgapi: {exc}", file=sys.stderr)
            return 1
        print(f"ended {ended} session(s) of admin user {args.username!r}")
    elif args.command == "keys":
        try:
            lines = keys_command(settings, args)
        except ImgcoreError as exc:
            print(f"imgapi: {exc}", file=sys.stderr)
            return 1
        for line in lines:
            print(line)
    return 0
