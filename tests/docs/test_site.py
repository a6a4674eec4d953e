"""The built documentation site: it works offline, and it ships the API's OpenAPI schema.

The site is built once (``mkdocs build --strict`` into a temporary directory, as ``nox -s docs``
builds it) and every HTML, SVG, CSS and JavaScript file is scanned for anything a browser
would fetch from another host: stylesheets, scripts, images, frames and fonts by absolute URL
(``link href``, ``script src``, ``img src``, ``@import``, ``url(…)``), URLs in scripts, and the
page markup that makes Material's own scripts load something from a CDN or an API (a mermaid
diagram, a repository header). Plain hyperlinks (``<a href>``) to other sites are fine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a browser fetches when it renders the element: tag -> attributes holding URLs.
FETCHED = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "input": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
    "link": ("href",),
}
# <link rel=…> kinds that only name another document (a browser does not fetch them).
NAVIGATION_RELS = {"canonical", "alternate", "prev", "next", "author", "license", "help"}

# URLs in Material's bundled scripts (assets/javascripts/) that it loads only in a situation
# this site never creates; each situation is rejected in the pages by `scan_html`.
MATERIAL_LOADERS = {
    "https://unpkg.com/mermaid@": "mermaid, for pages with a mermaid diagram",
    "https://unpkg.com/resize-observer-polyfill": "a polyfill, in browsers lacking "
    "ResizeObserver (none that Material supports)",
    "https://api.github.com/": "repository facts, when repo_url names a GitHub repository",
    "https://${e}/api/v4/": "repository facts, when repo_url names a GitLab repository",
}
# XML namespaces: identifiers that scripts compare or pass along, never fetched.
NAMESPACES = ("http://www.w3.org/",)

JS_URL = re.compile(r"""["'`](https?://[^"'`\s]*)""")
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
CSS_URL = re.compile(r"""url\(\s*["']?([^"')\s]+)""", re.I)
CSS_IMPORT = re.compile(r"""@import\s+["']([^"']+)""", re.I)


def is_external(url: str) -> bool:
    """A URL that names a host: ``https://…``, ``http://…`` or protocol-relative ``//…``."""
    url = url.strip()
    return url.startswith("//") or urlsplit(url).scheme.lower() in ("http", "https", "ftp")


def scan_css(text: str) -> list[str]:
    """The external URLs a stylesheet imports or loads (fonts, images)."""
    text = CSS_COMMENT.sub("", text)
    urls = CSS_URL.findall(text) + CSS_IMPORT.findall(text)
    return [f"css loads {url}" for url in urls if is_external(url)]


def scan_js(text: str, *, theme_bundle: bool = False) -> list[str]:
    """The absolute URLs in a script's string literals (what it could fetch)."""
    problems = []
    for url in JS_URL.findall(text):
        if url.startswith(NAMESPACES):
            continue
        if theme_bundle and url.startswith(tuple(MATERIAL_LOADERS)):
            continue
        problems.append(f"script names {url}")
    return problems


class _PageScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in: str | None = None
        self._script_type = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        urls = []
        for name in FETCHED.get(tag, ()):
            value = values.get(name, "")
            if name == "srcset":
                urls += [item.split()[0] for item in value.split(",") if item.strip()]
            elif value:
                urls.append(value)
        rels = set(values.get("rel", "").lower().split())
        if tag == "link" and rels and rels <= NAVIGATION_RELS:
            urls = []
        self.problems += [f"<{tag}> loads {url}" for url in urls if is_external(url)]
        if "style" in values:
            self.problems += scan_css(values["style"])
        if "mermaid" in values.get("class", "").split():
            self.problems.append("a mermaid diagram (Material loads mermaid from unpkg.com)")
        if values.get("data-md-component") == "source":
            self.problems.append("a repository header (Material fetches its facts from an API)")
        if tag in ("script", "style"):
            self._in = tag
            self._script_type = values.get("type", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.problems += scan_css(data)
        elif self._in == "script":
            self.problems += scan_js(data)


def scan_html(text: str) -> list[str]:
    """What a page (or an SVG image) would fetch from another host, or make a script fetch."""
    scanner = _PageScanner()
    scanner.feed(text)
    scanner.close()
    return scanner.problems


def scan_site(site: Path) -> Iterator[str]:
    """Every external fetch found in the built site, as ``path: what``."""
    for path in sorted(site.rglob("*")):
        kind = path.suffix.lower()
        if kind not in (".html", ".svg", ".css", ".js"):
            continue
        text = path.read_text(errors="replace")
        rel = path.relative_to(site).as_posix()
        if kind in (".html", ".svg"):
            problems = scan_html(text)
        elif kind == ".css":
            problems = scan_css(text)
        else:
            problems = scan_js(text, theme_bundle=rel.startswith("assets/javascripts/"))
        yield from (f"{rel}: {problem}" for problem in problems)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as ``nox -s docs`` builds it."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return out


@pytest.mark.slow  # builds the site (mkdocstrings imports the packages)
def test_no_page_fetches_from_another_host(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert sorted(scan_site(site)) == []


@pytest.mark.slow  # builds the site (mkdocstrings imports the packages)
def test_the_schema_is_the_apps(site: Path) -> None:
    from imgapi.app import create_app
    from imgapi.settings import Settings

    built = json.loads((site / "openapi.json").read_text())
    assert {"/upload", "/status/{request_id}", "/status/{request_id}/output.csv"} <= set(
        built["paths"]
    )
    assert built["info"]["title"] == "imgapi"
    # The same document the code makes now: generated at build time, not a copy.
    app = create_app(Settings(log_format="none"))
    assert built == json.loads(json.dumps(app.openapi_schema.to_schema()))


@pytest.mark.slow  # builds the site (mkdocstrings imports the packages)
def test_the_http_api_page_links_the_schema(site: Path) -> None:
    page = (site / "http-api" / "index.html").read_text()
    assert 'href="../openapi.json"' in page


@pytest.mark.parametrize(
    ("markup", "found"),
    [
        ('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">', 1),
        ('<link rel="preconnect" href="https://fonts.gstatic.com">', 1),
        ('<script src="//cdn.jsdelivr.net/npm/x.js"></script>', 1),
        ('<img srcset="a.png 1x, https://cdn.example.com/a@2x.png 2x">', 1),
        ('<div style="background: url(https://cdn.example.com/bg.png)"></div>', 1),
        ("<style>@import 'https://unpkg.com/x.css';</style>", 1),
        ("<script>fetch('https://www.google-analytics.com/collect')</script>", 1),
        ('<pre class="mermaid">graph LR</pre>', 1),
        ('<a href="https://github.com/x" data-md-component="source">x</a>', 1),
        ('<svg><image href="https://example.com/a.png"/></svg>', 1),
        # Fine: hyperlinks, navigation links, local and inline assets.
        ('<a href="https://www.rfc-editor.org/rfc/rfc9457">RFC 9457</a>', 0),
        ('<link rel="next" href="https://example.com/next/">', 0),
        ('<link rel="stylesheet" href="assets/main.css"><script src="../a.js"></script>', 0),
        ('<img src="data:image/png;base64,AAAA"><img src="../img/admin-list-phone.png">', 0),
        ("<script>document.createElementNS('http://www.w3.org/2000/svg', 'svg')</script>", 0),
    ],
)
def test_the_scan_finds_external_fetches(markup: str, found: int) -> None:
    assert len(scan_html(markup)) == found, scan_html(markup)


def test_the_scan_allows_material_loaders_only_in_its_bundle() -> None:
    bundle = 'x=()=>_t("https://unpkg.com/mermaid@11/dist/mermaid.min.js")'
    assert scan_js(bundle, theme_bundle=True) == []
    assert scan_js(bundle) != []
    assert scan_js('_t("https://unpkg.com/katex.js")', theme_bundle=True) != []
    assert scan_css("/* https://fontawesome.com */ a{background:url(data:x)}") == []
    assert scan_css("@font-face{src:url('https://fonts.gstatic.com/a.woff2')}") != []
