from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.common.fetch import FetchError, fetch_sdist
from builder.common.outcome import Outcome
from builder.common.paths import cache_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def sdist(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "upstream" / "demo-1.0.tar.gz"
    path.parent.mkdir()
    path.write_bytes(b"not really a tarball, but bytes with a hash" * 100)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "upstream"
    root.mkdir(exist_ok=True)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_path_and_file_url_are_cached_by_hash(sdist: tuple[Path, str]) -> None:
    path, digest = sdist
    got = fetch_sdist(path, digest)
    assert got == (cache_dir() / "sdists") / digest / "demo-1.0.tar.gz"
    assert got.read_bytes() == path.read_bytes()
    path.unlink()  # a second fetch of the same hash needs no source
    assert fetch_sdist(path.as_uri(), digest) == got


def test_fetch_over_http(sdist: tuple[Path, str], server: str) -> None:
    path, digest = sdist
    got = fetch_sdist(f"{server}/demo-1.0.tar.gz#sha256={digest}", digest.upper())
    assert got.name == "demo-1.0.tar.gz" and got.read_bytes() == path.read_bytes()


def test_sha256_mismatch_is_an_error_and_leaves_nothing(
    sdist: tuple[Path, str], server: str
) -> None:
    path, digest = sdist
    wrong = hashlib.sha256(b"something else").hexdigest()
    for source in (str(path), f"{server}/demo-1.0.tar.gz"):
        with pytest.raises(FetchError, match=f"sha256 mismatch: expected {wrong}, got {digest}"):
            fetch_sdist(source, wrong)
    assert not (cache_dir() / "sdists").exists() or not any((cache_dir() / "sdists").rglob("*"))


def test_missing_source_and_bad_hash_are_clear_errors(tmp_path: Path, server: str) -> None:
    digest = "0" * 64
    with pytest.raises(FetchError, match=r"nowhere\.tar\.gz: cannot read"):
        fetch_sdist(tmp_path / "nowhere.tar.gz", digest)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_sdist(f"{server}/missing-1.0.tar.gz", digest)
    with pytest.raises(FetchError, match="not a sha256"):
        fetch_sdist(tmp_path / "x.tar.gz", "abc")


def test_build_url_reports_a_hash_mismatch_as_a_failed_fetch(
    sdist: tuple[Path, str], tmp_path: Path
) -> None:
    from builder.build.pipeline import build_url

    path, _ = sdist
    r = build_url(
        str(path),
        "1" * 64,
        project="demo",
        version="1.0",
        python="3.11",
        target="manylinux_2_17_aarch64",
        out_dir=tmp_path / "out",
        log_dir=tmp_path / "logs",
    )
    assert r.status == Outcome.FAILED and r.step == "fetch" and "sha256 mismatch" in r.error
    assert r.log.exists() and "sha256 mismatch" in r.log.read_text()
