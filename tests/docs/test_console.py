"""Every shell example in the docs and the README runs, so the docs cannot drift from the code.

Fenced ``console`` blocks hold commands (``$ …``; a trailing backslash continues one) and what
they print (the other lines); ``sh``, ``bash`` and ``shell`` blocks hold only commands, one a
line (``#`` comments skipped). A page's commands run in order, in bash, as one session would:
exported variables and the working directory carry over, and a pseudo-terminal is the
controlling terminal (prompts such as ``Password:`` are answered with ``$PASSWORD``).

What the test arranges, and every liberty it takes with the text:

- The working directory stands in for a clone of the repository: ``products.csv`` (3 images)
  and ``examples/products.csv`` (the repository's sample with its public URLs swapped for
  the same number of images on a local origin) and ``photo.jpg``. ``uv run`` finds the
  workspace through ``UV_PROJECT``; the workspace's ``bin`` directory comes first on ``PATH``
  (``imgcore``, ``imgapi``, ``python``, ``moto_server``).
- The environment of the Python examples (conftest.py): SQLite and file storage in that
  directory, ``IMGCORE_FETCH_ALLOW=127.0.0.1/32``; ``PASSWORD`` is set.
- In the commands: the ports the examples name (8000 for the API, 5000 for moto) become free
  ones, and ``IMGAPI_PORT`` names the API's; ``https://example.com/hook`` becomes a local
  webhook receiver; ``<request_id>`` becomes the first id (a UUID) in the output of the
  latest command that printed one; a leading ``python3 -m pip install uv &&`` (the quick
  starts) is dropped: uv is there, and tests install nothing from a registry.
- ``imgapi serve`` and commands ending in ``&`` run in the background until the page is done
  (then SIGTERM); the next command runs once they answer (the API's ``/healthz``; a TCP
  connection to the port a command names, otherwise).
- Every command must exit 0. Shown output is checked loosely, against what the command wrote
  to stdout, stderr and the terminal: a JSON line's keys must be keys of the JSON printed;
  any other line must match a printed line, ``…`` standing for any text (and a hex word cut
  short, ``6f1c…``, for any id).

A block right after ``<!-- not-tested: reason -->`` is not run: keep those to examples that
need other machines (a deployment) or that would run this test again.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from support.server import WebhookReceiver, free_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
SHELLS = ("console", "bash", "sh", "shell")
FENCE = re.compile(r"^```(\S*)\s*$")
NOT_TESTED = re.compile(r"^<!-- not-tested: (?P<reason>.*\S) -->$")
HOST_PROMPT = re.compile(r"^(?P<host>[\w.-]+)\$ (?P<command>.*)$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PROMPT = re.compile(r"Password[^:\n]*:")
EXAMPLE_PORTS = (8000, 5000)  # the API's, moto's
PORT_IN_COMMAND = re.compile(r"(?<=[: ])(8000|5000)\b")
WEBHOOK = "https://example.com/hook"
PASSWORD = "correct horse battery staple"
COMMAND_TIMEOUT = 120
STARTUP_TIMEOUT = 90
# Replaces this python in the child with the command, after making the pseudo-terminal on
# stdin the controlling terminal of the new session (getpass reads /dev/tty).
CONTROLLING_TTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)
# Runs one command, then records the shell state the next command starts from.
WRAPPER = 'eval "$1"; status=$?; pwd > "$2.cwd"; env -0 > "$2.env"; exit $status'
SHELL_ONLY_VARIABLES = {"_", "SHLVL", "PWD", "OLDPWD"}


@dataclass
class Step:
    """One command and the output lines shown after it."""

    command: str
    host: str | None = None
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    where: str
    steps: list[Step]
    excluded: str | None  # the reason given, for a block that is not run


def parse_steps(language: str, body: list[str]) -> list[Step]:
    """The commands of a block, with the output shown after each (console blocks only)."""
    steps: list[Step] = []
    pending: list[str] = []
    for line in body:
        if pending:
            pending.append(line)
            if not line.endswith("\\"):
                steps[-1].command = "\n".join(pending)
                pending = []
            continue
        if language == "console":
            prompt = HOST_PROMPT.match(line)
            if line.startswith("$ "):
                steps.append(Step(line[2:]))
            elif prompt:
                steps.append(Step(prompt["command"], host=prompt["host"]))
            elif steps:
                steps[-1].expected.append(line)
                continue
            else:
                raise ValueError(f"output before any command: {line!r}")
        elif line.strip() and not line.lstrip().startswith("#"):
            steps.append(Step(line))
        else:
            continue
        if line.endswith("\\"):
            pending = [steps[-1].command]
    return steps


def parse_blocks(page: Path) -> list[Block]:
    """Every shell block of a page; ValueError for a not-tested marker not right before one."""
    lines = page.read_text().splitlines()
    rel = page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name
    blocks: list[Block] = []
    marker: re.Match[str] | None = None
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            language = fence[1]
            if language in SHELLS:
                steps = parse_steps(language, lines[i + 1 : end])
                reason = marker["reason"] if marker else None
                blocks.append(Block(f"{rel}:{i + 1}", steps, reason))
            elif marker:
                raise ValueError(f"{rel}:{i + 1}: not-tested marker before a {language} block")
            marker = None
            i = end + 1
            continue
        if lines[i].strip():
            if marker:
                raise ValueError(f"{rel}:{i + 1}: not-tested marker not right before a block")
            marker = NOT_TESTED.match(lines[i].strip())
        i += 1
    return blocks


def _wildcard(text: str) -> re.Pattern[str]:
    text = re.sub(r"[0-9a-f]*…", "…", " ".join(text.split()))
    parts = [re.escape(part).replace(r"\ ", r"\s+") for part in text.split("…")]
    return re.compile(".*".join(parts))


def _json_documents(printed: str) -> list[object]:
    documents = []
    for candidate in [printed, *printed.splitlines()]:
        with contextlib.suppress(ValueError):
            documents.append(json.loads(candidate))
    return documents


def output_problems(expected: list[str], printed: str) -> list[str]:
    """How what a command printed differs from the output a page shows for it (loosely)."""
    lines = [" ".join(line.split()) for line in printed.splitlines() if line.strip()]
    problems = []
    for want in (line.strip() for line in expected):
        if not want:
            continue
        if want.startswith("{"):
            keys = set(re.findall(r'"(\w+)"\s*:', want))
            if not any(
                isinstance(doc, dict) and keys <= doc.keys() for doc in _json_documents(printed)
            ):
                problems.append(f"no JSON object with the keys {sorted(keys)}")
        elif not any(_wildcard(want).fullmatch(line) for line in lines):
            problems.append(f"no line like {want!r}")
    return problems


class Session:
    """A shell session running a page's commands; a context manager (stops what it started)."""

    def __init__(self, cwd: Path, env: dict[str, str], webhook_url: str) -> None:
        self.cwd = cwd
        self.ports = {port: free_port() for port in EXAMPLE_PORTS}
        self.env = {
            **env,
            "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
            "UV_PROJECT": str(ROOT),
            "IMGAPI_PORT": str(self.ports[8000]),
            "PASSWORD": PASSWORD,
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
        }
        self.webhook_url = webhook_url
        self.state = cwd / ".shell-state"
        self.request_id: str | None = None
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def substitute(self, command: str) -> str:
        """The command as run here (see the module docstring)."""
        command = re.sub(r"^python3 -m pip install uv && ", "", command)
        command = PORT_IN_COMMAND.sub(lambda m: str(self.ports[int(m[1])]), command)
        command = command.replace(WEBHOOK, self.webhook_url)
        if "<request_id>" in command:
            assert self.request_id, f"no request id printed before {command!r}"
            command = command.replace("<request_id>", self.request_id)
        return command

    def run(self, command: str) -> str:
        """Run a command (in the background if it runs until stopped); what it printed."""
        command = self.substitute(command)
        if command.rstrip().endswith("&") or re.search(r"\bimgapi serve\b", command):
            self.start(command.rstrip().removesuffix("&"))
            return ""
        master, slave = pty.openpty()
        try:
            argv = ["bash", "-c", WRAPPER, "bash", command, str(self.state)]
            process = subprocess.Popen(
                [sys.executable, "-c", CONTROLLING_TTY, *argv],
                cwd=self.cwd,
                env=self.env,
                stdin=slave,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            os.close(slave)
            printed, terminal = self._talk(process, master)
        finally:
            os.close(master)
        output = (terminal + printed).decode(errors="replace").replace("\r", "")
        assert process.returncode == 0, f"exit status {process.returncode}:\n{output[-3000:]}"
        self._load_state()
        found = UUID.search(output)
        if found:
            self.request_id = found.group()
        return output

    def _talk(self, process: subprocess.Popen[bytes], master: int) -> tuple[bytes, bytes]:
        assert process.stdout is not None
        printed, terminal = bytearray(), bytearray()
        answered = 0
        deadline = time.monotonic() + COMMAND_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, printed)
            selector.register(master, selectors.EVENT_READ, terminal)
            while process.stdout in [key.fileobj for key in selector.get_map().values()]:
                if time.monotonic() > deadline:
                    os.killpg(process.pid, signal.SIGKILL)
                    pytest.fail(f"still running after {COMMAND_TIMEOUT} s:\n{printed.decode()}")
                for key, _ in selector.select(timeout=0.5):
                    fd = key.fd
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:  # EIO: the terminal's last user is gone
                        chunk = b""
                    if not chunk:
                        selector.unregister(key.fileobj)
                    key.data.extend(chunk)
                prompts = len(PROMPT.findall(terminal.decode(errors="replace")))
                while answered < prompts:
                    os.write(master, PASSWORD.encode() + b"\n")
                    answered += 1
        process.wait(COMMAND_TIMEOUT)
        return bytes(printed), bytes(terminal)

    def _load_state(self) -> None:
        cwd, env = Path(f"{self.state}.cwd"), Path(f"{self.state}.env")
        if cwd.exists() and env.exists():
            self.cwd = Path(cwd.read_text().strip())
            pairs = (item.partition("=") for item in env.read_text().split("\0") if item)
            self.env = {k: v for k, _, v in pairs if k not in SHELL_ONLY_VARIABLES}

    def start(self, command: str) -> None:
        """Start a command that runs until stopped, and wait until it answers."""
        log = self.cwd / f"background-{len(self.background) + 1}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((process, log))
        if re.search(r"\bimgapi serve\b", command):
            health = f"http://127.0.0.1:{self.ports[8000]}/healthz"
            self._wait(process, log, lambda: httpx.get(health, timeout=2).status_code == 200)
            return
        ports = [port for port in self.ports.values() if re.search(rf"\b{port}\b", command)]
        assert ports, f"no way to tell when {command!r} is ready"
        for port in ports:
            self._wait(process, log, lambda port=port: _accepts(port))

    @staticmethod
    def _wait(process: subprocess.Popen[bytes], log: Path, ready: object) -> None:
        assert callable(ready)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, f"exited at start:\n{log.read_text()[-3000:]}"
            try:
                if ready():
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process, _ in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in parse_blocks(page)]


def pages_to_run() -> list[Any]:
    """The pages with commands to run; those that take over 10 s (servers, argon2) are slow."""
    slow = {"README.md", "docs/admin.md", "docs/http-api.md", "docs/storage.md"}
    params = []
    for page in PAGES:
        if any(not block.excluded for block in parse_blocks(page)):
            name = page.relative_to(ROOT).as_posix()
            marks = [pytest.mark.slow] if name in slow else []
            params.append(pytest.param(page, id=name, marks=marks))
    return params


def test_every_shell_block_runs_or_says_why_not() -> None:
    blocks = all_blocks()
    run = [block for block in blocks if not block.excluded]
    assert len(run) >= 10
    for block in run:
        assert block.steps, f"{block.where}: no command"
        on_hosts = [step.host for step in block.steps if step.host]
        assert not on_hosts, f"{block.where}: runs on {on_hosts}: mark it not-tested, saying why"


@pytest.mark.parametrize("page", pages_to_run())
def test_commands_of_page(page: Path, example_dir: Path, example_env: dict[str, str]) -> None:
    if "curl " in page.read_text() and shutil.which("curl") is None:
        pytest.fail("the examples use curl: apt-get install curl")
    with WebhookReceiver() as hooks, Session(example_dir, example_env, hooks.url) as shell:
        for block in parse_blocks(page):
            if block.excluded:
                continue
            for step in block.steps:
                printed = shell.run(step.command)
                problems = output_problems(step.expected, printed)
                assert not problems, (
                    f"{block.where}: {step.command}\n{problems}\nprinted:\n{printed[-3000:]}"
                )


def test_console_blocks_are_parsed(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n```console\n$ imgcore plugins \\\n    | grep s3\ns3 0.1.0: imgcore_storage\n"
        "$ true\n```\n\n<!-- not-tested: needs S3 credentials -->\n```sh\n# a comment\n"
        "aws s3 ls\n\n```\n\n```text\n$ not a command\n```\n\n```console\n"
        "db.internal$ createdb imgcore\n```\n"
    )
    first, second, third = parse_blocks(page)
    assert first.excluded is None
    assert [s.command for s in first.steps] == ["imgcore plugins \\\n    | grep s3", "true"]
    assert first.steps[0].expected == ["s3 0.1.0: imgcore_storage"]
    assert second.excluded == "needs S3 credentials"
    assert [s.command for s in second.steps] == ["aws s3 ls"]
    assert third.steps[0].host == "db.internal"


@pytest.mark.parametrize(
    "text",
    [
        "<!-- not-tested: why -->\n```text\nx\n```\n",
        "<!-- not-tested: why -->\nSome text.\n\n```sh\nx\n```\n",
    ],
)
def test_a_stray_marker_is_an_error(text: str, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(ValueError, match="not-tested marker"):
        parse_blocks(page)


@pytest.mark.parametrize(
    ("expected", "printed", "ok"),
    [
        (['{"request_id":"6f1c…","status":"Pending"}'], '{"request_id":"ab","status":"x"}', True),
        (['{"request_id":"6f1c…","total":8}'], '{"request_id":"ab","status":"x"}', False),
        (['{"request_id":"6f1c…"}'], "Internal Server Error", False),
        (["database at revision …"], "database at revision 0003_thumbs\n", True),
        (["6f1c…", "Completed: 3 done, 0 failed"], "0f9e-ab\nCompleted: 3 done, 0 failed", True),
        (["Completed: 3 done, 0 failed"], "Failed: 0 done, 3 failed", False),
        (["whsec_…"], "whsec_aGVsbG8=", True),
        (["whsec_…"], "sec_aGVsbG8=", False),
        (
            ["8 ok, 0 failed of 8 images (3 products) in …s"],
            "8 ok, 0 failed of 8 images (3 products) in 1.2s",
            True,
        ),
        (
            ["8 ok, 0 failed of 8 images (3 products) in …s"],
            "7 ok, 1 failed of 8 images (3 products) in 1.2s",
            False,
        ),
    ],
)
def test_output_is_compared_loosely(expected: list[str], printed: str, ok: bool) -> None:
    assert (output_problems(expected, printed) == []) is ok
