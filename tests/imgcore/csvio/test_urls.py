"""imgcore._csvio.urls: how a cell lists image URLs, and which URLs a row may name."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from imgcore._csvio.urls import url_problem
from support.csvcheck import HEAD, URL, URL2, issues, one_issue, outcome, parse, row
from support.csvgen import parse_chunks


def test_urls_are_split_on_commas_ignoring_spaces_and_empty_items() -> None:
    [product] = parse(HEAD + row(urls=f" {URL} ,, {URL2},"))
    assert product.urls == (URL, URL2)


@pytest.mark.parametrize("urls", ["", " ", " , ,"])
def test_row_without_urls_is_rejected(urls: str) -> None:
    issue = one_issue(HEAD + row(urls=urls))
    assert (issue.row, issue.column, issue.reason) == (2, "Input Image Urls", "no_urls")


@pytest.mark.parametrize(
    "url",
    [
        "https://img.example.com",
        "HTTP://IMG.EXAMPLE.COM/A.JPG",
        "http://127.0.0.1:8002/img/a.jpg?r=1-1",
        "http://[::1]:8080/a.jpg",
        "https://bücher.example/bild.jpg",
        "https://img.example.com./a.jpg",
        "https://my_host.example.com/a.jpg",
        "https://img.example.com/é/a.jpg#frag",
    ],
)
def test_well_formed_http_urls_are_accepted(url: str) -> None:
    assert [p.urls for p in parse(HEAD + row(urls=url))] == [(url,)]


@pytest.mark.parametrize(
    "url",
    [
        "not-a-url",
        "www.example.com/a.jpg",
        "//img.example.com/a.jpg",
        "http://",
        "http:///a.jpg",
        "http:img.example.com/a.jpg",
        "http://img.example.com/a b.jpg",
        "http://img.example.com/a\tb.jpg",
        "http://img.example.com:99999/a.jpg",
        "http://img.example.com:0/a.jpg",
        "http://img.example.com:http/a.jpg",
        "http://img.example.com:/a.jpg",
        "http://-bad-.example.com/a.jpg",
        "http://img..example.com/a.jpg",
        "http://[::zz]/a.jpg",
        "http://[::1/a.jpg",
        "http://img.example.com\\a.jpg",
    ],
)
def test_malformed_url_is_rejected(url: str) -> None:
    issue = one_issue(HEAD + row(urls=url))
    assert (issue.row, issue.column, issue.reason) == (2, "Input Image Urls", "invalid_url")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x.jpg",
        "gopher://img.example.com/",
        "javascript:alert(1)",
        "data:image/png;base64",
        "localhost:8080/a.jpg",
    ],
)
def test_scheme_other_than_http_is_rejected(url: str) -> None:
    issue = one_issue(HEAD + row(urls=url))
    assert (issue.row, issue.column, issue.reason) == (2, "Input Image Urls", "unsupported_scheme")


@pytest.mark.parametrize(
    "url", ["http://user:pass@img.example.com/a.jpg", "https://user@img.example.com/a.jpg"]
)
def test_url_carrying_credentials_is_rejected(url: str) -> None:
    issue = one_issue(HEAD + row(urls=url))
    assert (issue.row, issue.reason) == (2, "url_credentials")


def test_each_bad_url_of_a_row_is_reported() -> None:
    found = issues(HEAD + row(urls=f"ftp://a/1.jpg,{URL},not-a-url"))
    assert [i.reason for i in found] == ["unsupported_scheme", "invalid_url"]


def test_literal_comma_splits_a_url_in_two() -> None:
    # Documented limitation: the cell is split on every comma.
    issue = one_issue(HEAD + row(urls="https://img.example.com/a,b.jpg"))
    assert issue.reason == "invalid_url"
    assert "b.jpg" in issue.message


_URLISH = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["http://", "HTTPS://", "https:/", "ftp://", ""]),
    st.text("ab1.-_", max_size=12),
    st.sampled_from(["", ":", ":80", ":65536", ":0"]),
    st.sampled_from(["", "/", "?", "#", "\\", "@"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00,"), max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(_URLISH)
def test_a_url_verdict_does_not_depend_on_the_other_urls_of_its_row(url: str) -> None:
    assume(url.strip())
    # An IPv6 URL beside it: the verdict on a row's URLs is the verdict on each.
    alone = parse_chunks([HEAD + row(urls=url)])
    beside = parse_chunks([HEAD + row(urls=f"{url},http://[::1]/x.jpg")])
    if isinstance(alone, list):
        assert isinstance(beside, list)
        assert [p.urls for p in beside] == [(*p.urls, "http://[::1]/x.jpg") for p in alone]
    else:
        assert outcome(beside) == outcome(alone)


_HOSTS = st.sampled_from(
    ["a.example", "127.0.0.1:8002", "b-c.example.:443", "[::1]:80", "bücher.example", "a@b", "a:0"]
)
_TAILS = st.builds(
    "{}{}".format,
    st.sampled_from(["", "/", "?", "#", ":80/", "@x/"]),
    st.text(st.sampled_from(" \t\x7f\x85\u200b\u00a0é/a?#@:") | st.characters(), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(_HOSTS, st.sampled_from(["http://", "https://", "HTTP://", "http:/", "ftp://"]), _TAILS)
def test_a_url_verdict_does_not_depend_on_the_hosts_judged_before_it(
    host: str, scheme: str, tail: str
) -> None:
    good_authorities: set[str] = set()
    url_problem(f"https://{host}/", good_authorities)  # remembers the host if it is fine
    url = f"{scheme}{host}{tail}"
    assert url_problem(url, good_authorities) == url_problem(url)
