"""`wheelfarm export DEST`: the index's read side as static files, served by Debian's nginx with the
shipped configuration (deploy/nginx/wheelfarm-export.conf), and installed from with real pip and uv."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from urllib.parse import urljoin

import pytest
from support.index_server import Dists, Server, create_token, free_port, start_server, twine_upload
from support.nginx import NGINX, command, export_conf
from support.projects import make_wheel

from index_server.export import spelling_pattern
from index_server.simple import HTML, JSON, TEXT_HTML, negotiate

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


def export(data: Path, dest: Path, *extra: str) -> dict:
    proc = subprocess.run(
        ["wheelfarm", "export", str(dest), "--data", str(data), "--json", *extra],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def get(
    url: str, accept: str | None = None, encoding: str | None = None
) -> tuple[int, Message, bytes]:
    headers = {"Accept": accept} if accept else {}
    if encoding:
        headers["Accept-Encoding"] = encoding
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def own(dists: Dists, tmp_path_factory):
    """An index of this module's own (it uploads and yanks; the session's index stays as it is)."""
    data = tmp_path_factory.mktemp("export-index") / "data"
    token = create_token(data, "ci")
    server = start_server(data)
    result = twine_upload(server.url, token, dists.pure, dists.pure_sdist, dists.native)
    assert result.returncode == 0, result.stdout + result.stderr
    yield {"data": data, "server": server, "token": token}
    server.stop()


@pytest.fixture(scope="module")
def index_data(own) -> Path:
    return own["data"]


@pytest.fixture(scope="module")
def server(own) -> Server:
    return own["server"]


@pytest.fixture(scope="module")
def published(own, dists: Dists) -> Dists:
    return dists


@pytest.fixture(scope="module")
def upload(own):
    return lambda *files: twine_upload(own["server"].url, own["token"], *files)


@pytest.fixture(scope="module")
def exported(index_data: Path, published: Dists, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("export") / "site"
    report = export(index_data, dest)
    assert report["projects"] >= 2 and report["files"] >= 3
    return dest


@pytest.fixture(scope="module")
def nginx(exported: Path, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    assert Path(NGINX).exists(), "nginx (tests/debian-packages.txt) serves the export"
    prefix = tmp_path_factory.mktemp("nginx")
    port = free_port()
    conf = export_conf(prefix, exported, port)
    log = prefix / "access.log"
    test = subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(conf)],
                          capture_output=True, text=True)  # fmt: skip
    assert test.returncode == 0, test.stderr
    proc = subprocess.Popen(command(conf), stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/simple/", timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
    yield url, log
    proc.terminate()
    proc.wait(timeout=10)


def test_export_holds_both_representations_metadata_and_files(
    exported: Path, server: Server, published: Dists
):
    for name in ("tiny-pure", "tiny-native"):
        page = exported / "simple" / name
        assert (page / "index.html").read_bytes().startswith(b"<!DOCTYPE html>")
        doc = json.loads((page / "index.json").read_text())
        live = json.loads(get(f"{server.url}/simple/{name}/", JSON)[2])
        # The same page as the live server's, links resolved against where each page lives.
        page_url = f"http://h/simple/{name}/"
        for mine, theirs in zip(doc["files"], live["files"], strict=True):
            assert urljoin(page_url, mine.pop("url")) == urljoin(page_url, theirs.pop("url"))
            assert mine == theirs
        assert doc["versions"] == live["versions"] and doc["meta"] == live["meta"]
        for f in doc["files"]:
            stored = exported / "files" / name / f["filename"]
            assert stored.stat().st_size == f["size"]
            if f["core-metadata"]:
                meta = (exported / "files" / name / (f["filename"] + ".metadata")).read_bytes()
                assert get(f"{server.url}/files/{name}/{f['filename']}.metadata")[2] == meta
    index = json.loads((exported / "simple" / "index.json").read_text())
    assert {"tiny-pure", "tiny-native"} <= {p["name"] for p in index["projects"]}
    assert not list(exported.rglob("*.part"))
    # Every page has its gzipped sibling (for nginx's gzip_static), the page's bytes exactly.
    pages = sorted(exported.glob("simple/**/index.*[ln]"))
    assert len(pages) == 2 * len(index["projects"]) + 2
    for page in pages:
        assert gzip.decompress(Path(f"{page}.gz").read_bytes()) == page.read_bytes()


def test_export_is_incremental_and_replaces_pages_atomically(
    index_data: Path, exported: Path, upload, tmp_path: Path
):
    again = export(index_data, exported)
    assert again["pages_written"] == [] and again["files_copied"] == []
    assert again["pages_unchanged"] == 2 * again["projects"] + 2
    page = exported / "simple" / "tiny-pure" / "index.json"
    reader = page.open("rb")  # a reader holding the old page while the export replaces it
    old = page.read_bytes()
    wheel = make_wheel(tmp_path, "tiny-pure", "0.2")
    assert upload(wheel).returncode == 0
    after = export(index_data, exported)
    assert sorted(after["pages_written"]) == [
        "simple/tiny-pure/index.html",
        "simple/tiny-pure/index.json",
    ]
    assert after["files_copied"] == [f"files/tiny-pure/{wheel.name}"]
    assert reader.read() == old  # whole old bytes: the new page was renamed over, not rewritten
    reader.close()
    assert wheel.name in page.read_text()
    subprocess.run(
        ["wheelfarm", "yank", "tiny-pure", "0.2", "--reason", "test", "--data", str(index_data)],
        check=True,
        capture_output=True,
    )
    yanked = export(index_data, exported)
    assert len(yanked["pages_written"]) == 2 and yanked["files_copied"] == []
    assert json.loads(page.read_text())["files"][-1]["yanked"] == "test"
    # The .gz siblings follow their pages: rewritten with them, left alone otherwise, written
    # again when missing, removed with them.
    gz = Path(f"{page}.gz")
    assert gzip.decompress(gz.read_bytes()) == page.read_bytes()
    stamp = gz.stat().st_mtime_ns
    assert export(index_data, exported)["pages_written"] == [] and gz.stat().st_mtime_ns == stamp
    gz.unlink()
    assert export(index_data, exported)["pages_written"] == ["simple/tiny-pure/index.json"]
    assert gzip.decompress(gz.read_bytes()) == page.read_bytes()
    gone = make_wheel(tmp_path / "gone", "gone-proj", "1.0")
    assert upload(gone).returncode == 0
    export(index_data, exported)
    assert (exported / "simple/gone-proj/index.html.gz").is_file()
    for folder in ("files", "records"):  # the project leaves the index (as an operator would)
        shutil.rmtree(index_data / folder / "gone-proj")
    removed = export(index_data, exported)["removed"]
    assert {"simple/gone-proj/index.html.gz", "simple/gone-proj/index.json.gz"} <= set(removed)
    assert not (exported / "simple/gone-proj").exists()


def test_export_with_links_to_the_live_index(index_data: Path, tmp_path: Path):
    report = export(index_data, tmp_path / "links", "--files-url", "https://wheels.example.com/")
    assert report["files_copied"] == [] and not (tmp_path / "links" / "files").exists()
    doc = json.loads((tmp_path / "links/simple/tiny-pure/index.json").read_text())
    assert all(
        f["url"].startswith("https://wheels.example.com/files/tiny-pure/") for f in doc["files"]
    )


def test_export_refuses_a_missing_index(tmp_path: Path):
    proc = subprocess.run(
        ["wheelfarm", "export", str(tmp_path / "out"), "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "nope: no index data folder" in proc.stderr
    assert not (tmp_path / "out").exists()


ACCEPTS = [
    None,
    "*/*",
    "text/html",
    PIP_ACCEPT,
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
    JSON,
    "application/vnd.pypi.simple.latest+json",
    f"{JSON};q=0.5",
    f"{JSON};q=0, text/html",
    f"{HTML}, {JSON};q=0.5",
    f"text/html, {JSON};q=0.9",
]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_nginx_negotiates_like_the_live_server(nginx, accept: str | None):
    url, _ = nginx
    for path in ("/simple/", "/simple/tiny-pure/"):
        status, headers, body = get(url + path, accept)
        assert status == 200
        want = negotiate(accept)
        media = headers["Content-Type"].split(";")[0]
        assert media == (TEXT_HTML if want == HTML else want)
        assert ("Accept" in headers.get("Vary", "")) and body
        if media == JSON:
            assert json.loads(body)["meta"]["api-version"]


def test_nginx_known_difference_and_plain_urls(nginx):
    url, _ = nginx
    # The one documented difference: a lower but non-zero HTML preference; nginx answers HTML.
    accept = f"text/html;q=0.1, {JSON};q=0.5"
    assert negotiate(accept) == JSON
    assert get(url + "/simple/tiny-pure/", accept)[1]["Content-Type"].startswith("text/html")
    status, headers, _ = get(url + "/simple/tiny-pure/index.json")
    assert status == 200 and headers["Content-Type"] == JSON
    req = urllib.request.Request(url + "/simple/tiny-pure", method="HEAD")
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=5)
    assert err.value.code == 301 and err.value.headers["Location"] == "/simple/tiny-pure/"
    assert get(url + "/simple/no-such-project/")[0] == 404
    assert get(url + "/.wheelfarm-export.json")[0] == 404


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.parametrize("accept", [None, PIP_ACCEPT])
def test_nginx_sends_the_gzipped_pages_to_clients_that_accept_gzip(nginx, exported, accept):
    url, _ = nginx
    for path in ("/simple/", "/simple/tiny-pure/"):
        want = negotiate(accept)
        page = exported / path.strip("/") / ("index.json" if want == JSON else "index.html")
        status, headers, body = get(url + path, accept, encoding="gzip, deflate")
        assert status == 200 and headers.get("Content-Encoding") == "gzip"
        assert body == Path(f"{page}.gz").read_bytes()  # the file, not compressed per request
        assert gzip.decompress(body) == page.read_bytes()
        assert headers["Content-Type"].split(";")[0] == (TEXT_HTML if want == HTML else want)
        assert {"Accept", "Accept-Encoding"} <= {
            v.strip() for v in ",".join(headers.get_all("Vary")).split(",")
        }
        # A client that does not accept gzip gets the page itself.
        status, headers, body = get(url + path, accept)
        assert "Content-Encoding" not in headers and body == page.read_bytes()


def test_pip_and_uv_install_from_the_export_under_nginx(nginx, published: Dists, tmp_path: Path):
    url, log = nginx
    index = f"{url}/simple/"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    subprocess.run(
        [*pip, "install", "--target", str(tmp_path / "pip"), "--index-url", index,
         "tiny-native==1.0"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert list((tmp_path / "pip").glob("tiny_native-1.0.dist-info"))
    env = {
        "UV_NO_CACHE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
    }
    proc = subprocess.run(
        ["uv", "pip", "install", "--python", sys.executable, "--target", str(tmp_path / "uv"),
         "--index-url", index, "tiny-pure==0.1"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "uv").glob("tiny_pure-0.1.dist-info"))
    requests = log.read_text()
    # Both asked for JSON pages (PEP 691) and got the files; uv read the PEP 658 metadata first.
    assert "GET /simple/tiny-native/ " in requests and "GET /simple/tiny-pure/ " in requests
    assert '.whl.metadata HTTP/1.1" 200' in requests
    assert '"GET /files/tiny-native/tiny_native-1.0-' in requests


def test_a_spelling_pattern_matches_every_other_spelling_and_not_the_name():
    pattern = re.compile(spelling_pattern("foo-bar2"), re.IGNORECASE)  # nginx's ~* is PCRE, /i
    for path in (
        "/simple/Foo_Bar2/",
        "/simple/foo.bar2",
        "/simple/FOO-BAR2/",
        "/simple/foo_-.bar2/",
    ):
        assert pattern.match(path), path
    for path in ("/simple/foo-bar2/", "/simple/foo-bar2", "/simple/foobar2/", "/simple/foo-bar23/",
                 "/simple/x-foo-bar2/", "/simple/foo-bar2/index.json"):  # fmt: skip
        assert not pattern.match(path), path
    with pytest.raises(ValueError):
        spelling_pattern("Foo_Bar")


def test_nginx_redirects_other_spellings_to_the_normalized_page(nginx, exported: Path):
    url, _ = nginx
    opener = urllib.request.build_opener(NoRedirect)
    for path in ("/simple/Tiny_Pure/", "/simple/TINY.PURE/", "/simple/tiny__pure", "/simple/Tiny-Pure/",
                 "/simple/tiny-NATIVE/"):  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(urllib.request.Request(url + path, headers={"Accept": JSON}), timeout=5)
        want = "/simple/tiny-native/" if "native" in path.lower() else "/simple/tiny-pure/"
        assert (err.value.code, err.value.headers["Location"]) == (301, want), path
    # Followed, the redirect ends on the page (urllib follows it, as pip and uv do).
    status, headers, body = get(url + "/simple/Tiny_Pure/", JSON)
    assert status == 200 and headers["Content-Type"] == JSON
    assert body == (exported / "simple/tiny-pure/index.json").read_bytes()
    # Names the index does not hold stay 404s; the map itself is not served.
    for path in ("/simple/Tiny_Purex/", "/simple/No_Such/", "/.wheelfarm-names.map"):
        assert get(url + path)[0] == 404, path


def test_pip_installs_through_a_non_normalized_project_url(nginx, published: Dists, tmp_path):
    """pip normalizes names itself before asking an index; a link someone wrote by hand (here a
    --find-links page) keeps its spelling, and the redirect makes it work."""
    url, log = nginx
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    proc = subprocess.run(
        [*pip, "install", "--target", str(tmp_path / "pip"), "--no-index",
         "--find-links", f"{url}/simple/Tiny_Pure/", "tiny-pure==0.1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list((tmp_path / "pip").glob("tiny_pure-0.1.dist-info"))
    assert '"GET /simple/Tiny_Pure/ HTTP/1.1" 301' in log.read_text()
