"""The index client against a real local HTTP server serving a static PEP 691/503 index."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.static_index import FileSpec, StaticIndexServer, write_static_index

from builder.common.httpcache import HttpCache, freshness
from builder.common.upstream import (
    PYPI_SIMPLE,
    IndexClient,
    ProjectNotFound,
    UpstreamError,
    parse_html_page,
    parse_json_page,
    resolve_index_url,
)

WHEEL = "demo_pkg-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"
PROJECTS = {
    "Demo.Pkg": [
        FileSpec("demo_pkg-1.0.tar.gz", b"sdist bytes", requires_python=">=3.9"),
        FileSpec(WHEEL, b"wheel bytes"),
        FileSpec("demo_pkg-0.9.tar.gz", b"old", yanked="broken metadata"),
        FileSpec("demo_pkg-0.8.tar.gz", b"older", yanked=True),
    ],
    "other": [FileSpec("other-2.0.tar.gz", b"other")],
}


@pytest.fixture(scope="module")
def index_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("index")
    write_static_index(root, PROJECTS)
    return root


@pytest.fixture
def server(index_root: Path) -> Iterator[StaticIndexServer]:
    with StaticIndexServer(index_root) as srv:
        yield srv


@pytest.fixture
def client(server: StaticIndexServer, tmp_path: Path) -> Iterator[IndexClient]:
    with IndexClient(server.url, cache=HttpCache(tmp_path / "http"), backoff=0.01) as c:
        yield c


def check_demo(page) -> None:
    files = {f.filename: f for f in page.files}
    sdist = files["demo_pkg-1.0.tar.gz"]
    assert sdist.is_sdist and not sdist.is_wheel and str(sdist.version) == "1.0"
    assert sdist.requires_python == ">=3.9" and not sdist.yanked
    assert sdist.url.endswith("/files/demo_pkg-1.0.tar.gz") and sdist.url.startswith("http://")
    assert sdist.sha256 == FileSpec("x", b"sdist bytes").sha256
    assert files["demo_pkg-0.9.tar.gz"].yanked
    assert files["demo_pkg-0.9.tar.gz"].yanked_reason == "broken metadata"
    assert (
        files["demo_pkg-0.8.tar.gz"].yanked and files["demo_pkg-0.8.tar.gz"].yanked_reason is None
    )
    wheel = files[WHEEL]
    assert wheel.is_wheel and {str(t) for t in wheel.tags} == {"cp311-cp311-manylinux_2_17_aarch64"}
    assert [str(v) for v in page.releases()] == ["1.0", "0.9", "0.8"]


def test_json_page(client: IndexClient, server: StaticIndexServer) -> None:
    page = client.project("demo_pkg")  # any spelling: the URL uses the normalized name
    check_demo(page)
    assert page.versions == ("0.8", "0.9", "1.0")
    files = {f.filename: f for f in page.files}
    assert files["demo_pkg-1.0.tar.gz"].size == len(b"sdist bytes")
    assert files["demo_pkg-1.0.tar.gz"].upload_time == "2023-01-01T00:00:00Z"
    assert server.requests["/simple/demo-pkg/"] == 1


def test_html_fallback(client: IndexClient, server: StaticIndexServer) -> None:
    server.behave("/simple/demo-pkg/", html_only=True)
    check_demo(client.project("Demo.Pkg"))


def test_404_is_project_not_found(client: IndexClient) -> None:
    with pytest.raises(ProjectNotFound) as info:
        client.project("no-such-project")
    msg = str(info.value)
    assert msg.startswith(client.index_url + "no-such-project/: ") and "404" in msg
    assert "\n" not in msg


def test_garbage_json_is_a_clear_error(client: IndexClient, server: StaticIndexServer) -> None:
    server.behave("/simple/other/", garbage=True)
    with pytest.raises(UpstreamError, match=r"/simple/other/: garbage instead of PEP 691 JSON"):
        client.project("other")


def test_retries_5xx_then_succeeds(client: IndexClient, server: StaticIndexServer) -> None:
    server.behave("/simple/other/", fail_first=2)
    page = client.project("other")
    assert [f.filename for f in page.files] == ["other-2.0.tar.gz"]
    assert server.requests["/simple/other/"] == 3 and client.stats.requests == 3


def test_429_honours_retry_after(client: IndexClient, server: StaticIndexServer) -> None:
    server.behave("/simple/other/", fail_first=1, fail_status=429, retry_after="1")
    start = time.monotonic()
    client.project("other")
    assert time.monotonic() - start >= 1.0  # the backoff alone would be 0.01 s
    assert server.requests["/simple/other/"] == 2


def test_gives_up_after_retries(client: IndexClient, server: StaticIndexServer) -> None:
    server.behave("/simple/other/", status=500)
    with pytest.raises(UpstreamError, match=r"HTTP 500 .*\(4 attempts\)"):
        client.project("other")
    assert server.requests["/simple/other/"] == 4


def test_timeout_is_retried_then_reported(server: StaticIndexServer, tmp_path: Path) -> None:
    server.behave("/simple/other/", sleep=1.0)
    with IndexClient(server.url, cache=False, timeout=0.3, retries=1, backoff=0.01) as c:
        start = time.monotonic()
        with pytest.raises(UpstreamError, match=r"timed out after 0.3s \(2 attempts\)"):
            c.project("other")
        assert time.monotonic() - start < 5
    assert server.requests["/simple/other/"] == 2


def test_etag_revalidation(server: StaticIndexServer, tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "http")
    with IndexClient(server.url, cache=cache) as c:
        first = c.project("other")
    # max-age=0: the next run revalidates with If-None-Match and gets 304, no body
    with IndexClient(server.url, cache=cache) as c:
        second = c.project("other")
        assert c.stats.not_modified == 1 and c.stats.requests == 1
    assert first == second
    assert server.requests["/simple/other/"] == 2


def test_max_age_answers_without_requests(index_root: Path, tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "http")
    with StaticIndexServer(index_root, cache_control="public, max-age=600") as srv:
        with IndexClient(srv.url, cache=cache) as c:
            c.project("other")
        with IndexClient(srv.url, cache=cache) as c:
            c.project("other")
            assert c.stats.requests == 0 and c.stats.fresh_hits == 1
        with IndexClient(srv.url, cache=cache, refresh=True) as c:
            c.project("other")
            assert c.stats.requests == 1 and c.stats.not_modified == 1
        assert srv.requests["/simple/other/"] == 2


def test_many_projects_concurrently_with_failures(client: IndexClient) -> None:
    pages = client.projects(["demo-pkg", "Other", "missing", "other"])
    assert list(pages) == ["demo-pkg", "other", "missing"]
    assert isinstance(pages["missing"], ProjectNotFound)
    assert not isinstance(pages["other"], Exception)


def test_download_verifies_and_caches(
    client: IndexClient, server: StaticIndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))
    page = client.project("demo-pkg")
    sdist = next(f for f in page.files if f.filename == "demo_pkg-1.0.tar.gz")
    path = client.download(sdist)
    assert path.read_bytes() == b"sdist bytes"
    client.download(sdist)
    assert server.requests["/files/demo_pkg-1.0.tar.gz"] == 1  # the second came from the cache
    import dataclasses

    forged = dataclasses.replace(sdist, hashes={"sha256": "0" * 64})
    with pytest.raises(UpstreamError, match="sha256 mismatch"):
        client.download(forged)
    assert not list((tmp_path / "cache" / "files" / ("0" * 64)).rglob("*"))


def test_index_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_index_url(None) == PYPI_SIMPLE == resolve_index_url("pypi")
    assert resolve_index_url("http://127.0.0.1:1/simple") == "http://127.0.0.1:1/simple/"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple/")
    assert resolve_index_url("pip") == "https://mirror.example/simple/"
    with pytest.raises(UpstreamError, match="must start with http"):
        resolve_index_url("ftp://x")


def test_parsers_directly() -> None:
    html = b"""<html><head><base href="https://files.example/base/"></head><body>
    <a href="pkg-1.0.tar.gz#sha256=abc" data-requires-python="&gt;=3.8" data-core-metadata="sha256=def">pkg-1.0.tar.gz</a>
    <a href="/abs/pkg-1.0-py3-none-any.whl" data-yanked="">pkg-1.0-py3-none-any.whl</a>
    </body></html>"""
    page = parse_html_page("pkg", "https://idx.example/simple/pkg/", html)
    a, b = page.files
    assert a.url == "https://files.example/base/pkg-1.0.tar.gz" and a.sha256 == "abc"
    assert (
        a.requires_python == ">=3.8"
        and a.core_metadata
        and dict(a.core_metadata_hashes) == {"sha256": "def"}
    )
    assert (
        b.url == "https://files.example/abs/pkg-1.0-py3-none-any.whl"
        and b.yanked
        and b.yanked_reason is None
    )
    with pytest.raises(UpstreamError, match="no `files` list"):
        parse_json_page("pkg", "https://idx.example/simple/pkg/", b'{"meta": {}}')
    with pytest.raises(UpstreamError, match=r"unsupported simple API version 2\.0"):
        parse_json_page("pkg", "u", b'{"meta": {"api-version": "2.0"}, "files": []}')
    assert freshness("public, max-age=600") == (True, 600.0)
    assert freshness("no-store") == (False, 0.0) and freshness(None) == (True, 0.0)
