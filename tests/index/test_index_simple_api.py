"""The simple API against the real app under gunicorn: twine in, pip and uv out, PEP fields checked."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from index_http import SimplePage, request
from support.index_server import Dists, Server

JSON = "application/vnd.pypi.simple.v1+json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_html_project_page_has_pep_503_592_658_fields(server: Server, published: Dists) -> None:
    reply = request(server.url + "/simple/tiny-pure/")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "&lt;4" in reply.text  # requires-python is escaped in the attribute
    page = SimplePage(reply.text)
    assert page.meta["pypi:repository-version"] == "1.1"
    links = page.by_name()
    assert set(links) == {published.pure.name, published.pure_sdist.name}
    wheel = links[published.pure.name]
    href = wheel["href"] or ""
    assert href.endswith(f"#sha256={sha256(published.pure)}")
    assert wheel["data-requires-python"] == ">=3.8,<4"
    assert "data-yanked" not in wheel
    metadata = request(server.url + href.split("#")[0] + ".metadata")
    assert metadata.status == 200
    with zipfile.ZipFile(published.pure) as zf:
        assert metadata.body == zf.read("tiny_pure-0.1.dist-info/METADATA")
    digest = "sha256=" + hashlib.sha256(metadata.body).hexdigest()
    assert wheel["data-core-metadata"] == digest
    assert wheel["data-dist-info-metadata"] == digest
    assert "data-core-metadata" not in links[published.pure_sdist.name]


def test_html_index_lists_projects(server: Server, published: Dists) -> None:
    page = SimplePage(request(server.url + "/simple/").text)
    assert page.meta["pypi:repository-version"] == "1.1"
    assert {"tiny-pure": "/simple/tiny-pure/", "tiny-native": "/simple/tiny-native/"}.items() <= {
        text: attrs["href"] for attrs, text in page.anchors
    }.items()


def test_json_project_page_has_pep_691_700_fields(server: Server, published: Dists) -> None:
    reply = request(server.url + "/simple/tiny-pure/", headers={"Accept": JSON})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == JSON
    assert "Accept" in reply.headers["Vary"]
    body = json.loads(reply.body)
    assert body["meta"]["api-version"] == "1.1"
    assert body["name"] == "tiny-pure"
    assert body["versions"] == ["0.1"]
    files = {f["filename"]: f for f in body["files"]}
    wheel = files[published.pure.name]
    assert wheel["hashes"] == {"sha256": sha256(published.pure)}
    assert wheel["requires-python"] == ">=3.8,<4"
    assert wheel["yanked"] is False
    assert wheel["size"] == published.pure.stat().st_size
    assert datetime.fromisoformat(wheel["upload-time"].replace("Z", "+00:00")).tzinfo is not None
    assert wheel["upload-time"].endswith("Z")
    assert wheel["core-metadata"] == wheel["dist-info-metadata"]
    assert set(wheel["core-metadata"]) == {"sha256"}
    assert files[published.pure_sdist.name]["core-metadata"] is False
    # The URL is usable as given (relative to the page).
    assert request(server.url + wheel["url"]).body == published.pure.read_bytes()

    index = json.loads(request(server.url + "/simple/", headers={"Accept": JSON}).body)
    assert index["meta"]["api-version"] == "1.1"
    assert {"name": "tiny-native"} in index["projects"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        ("text/html", "text/html"),
        (JSON, JSON),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        (f"{JSON};q=0.2, text/html;q=0.5", "text/html"),
        (f"{JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", JSON),
        (f"text/html;q=0, {JSON};q=0.1", JSON),
        ("application/*", "application/vnd.pypi.simple.v1+html"),
        ("text/plain", 406),
        ("image/png, application/json", 406),
        (f"{JSON};q=0", 406),
    ],
)
def test_content_negotiation(server: Server, published: Dists, accept, expected) -> None:
    headers = {"Accept": accept} if accept else {}
    reply = request(server.url + "/simple/tiny-pure/", headers=headers)
    if expected == 406:
        assert reply.status == 406, reply.text
        assert "Accept" in reply.text
    else:
        assert reply.status == 200
        assert reply.headers["Content-Type"].split(";")[0] == expected


def test_names_are_normalized_by_redirect(server: Server, published: Dists) -> None:
    reply = request(server.url + "/simple/Tiny_Pure/")
    assert reply.status == 301
    assert reply.headers["Location"].endswith("/simple/tiny-pure/")
    assert request(server.url + "/simple/tiny.pure/").status == 301
    assert request(server.url + "/simple/tiny-pure").status in (301, 308)


def test_pages_have_etags(server: Server, published: Dists) -> None:
    first = request(server.url + "/simple/tiny-pure/", headers={"Accept": JSON})
    etag = first.headers["ETag"]
    again = request(
        server.url + "/simple/tiny-pure/", headers={"Accept": JSON, "If-None-Match": etag}
    )
    assert again.status == 304
    html = request(server.url + "/simple/tiny-pure/", headers={"If-None-Match": etag})
    assert html.status == 200  # another representation, another ETag


def test_file_serving_etag_range_and_types(server: Server, published: Dists) -> None:
    url = f"{server.url}/files/tiny-pure/{published.pure.name}"
    data = published.pure.read_bytes()
    full = request(url)
    assert full.status == 200
    assert full.body == data
    assert full.headers["Content-Type"] == "application/zip"
    assert full.headers["Accept-Ranges"] == "bytes"
    etag = full.headers["ETag"]
    assert etag.strip('"') == sha256(published.pure)
    assert request(url, headers={"If-None-Match": etag}).status == 304
    part = request(url, headers={"Range": "bytes=10-19"})
    assert part.status == 206
    assert part.body == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = request(url, headers={"Range": "bytes=-22"})  # how lazy wheel readers find the zip index
    assert tail.status == 206
    assert tail.body == data[-22:]
    assert request(url, headers={"Range": f"bytes={len(data) + 10}-"}).status == 416
    sdist = request(f"{server.url}/files/tiny-pure/{published.pure_sdist.name}")
    assert sdist.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in sdist.headers
    assert sdist.body == published.pure_sdist.read_bytes()


def _fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def test_pip_download_and_install_from_the_index(
    server: Server, published: Dists, tmp_path: Path
) -> None:
    index = f"{server.url}/simple/"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    dl = tmp_path / "dl"
    subprocess.run(
        [
            *pip,
            "download",
            "--index-url",
            index,
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(dl),
            "tiny-pure",
        ],
        check=True,
        capture_output=True,
    )
    assert [p.name for p in dl.iterdir()] == [published.pure.name]
    assert sha256(dl / published.pure.name) == sha256(published.pure)

    python = _fresh_venv(tmp_path / "venv")
    subprocess.run(
        [
            *pip,
            "--python",
            str(python),
            "install",
            "--index-url",
            index,
            "tiny-native",
            "Tiny_Pure",
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            str(python),
            "-c",
            "import tiny_native, tiny_pure; print(tiny_native.triangle(10), tiny_pure.__version__)",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["55", "0.1"]


def test_uv_pip_install_from_the_index(server: Server, published: Dists, tmp_path: Path) -> None:
    venv = tmp_path / "uv-venv"
    env = {
        "UV_NO_CACHE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
    }
    subprocess.run(
        ["uv", "venv", "--python", sys.executable, str(venv)],
        check=True,
        capture_output=True,
        env=env,
    )
    result = subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            f"{server.url}/simple/",
            "tiny-native",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tiny_native; print(tiny_native.machine())"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() in ("x86_64", "aarch64")


def test_twine_repeat_upload_and_skip_existing(
    server: Server, published: Dists, twine_upload
) -> None:
    again = twine_upload(published.pure)
    assert again.returncode != 0
    assert "409" in again.stdout + again.stderr
    skipped = twine_upload(published.pure, published.native, skip_existing=True)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "Skipping" in skipped.stdout + skipped.stderr


def test_same_filename_with_other_content_is_refused(
    server: Server, published: Dists, upload_token: str, tmp_path: Path
) -> None:
    from index_http import upload, upload_form
    from support.projects import make_dummy_wheel

    other = make_dummy_wheel(tmp_path, "tiny-pure", "0.1", payload=b"# different\n")
    assert other.name == published.pure.name
    reply = upload(server.url, upload_token, *upload_form(other))
    assert reply.status == 409
    assert "different content" in reply.text
    stored = request(f"{server.url}/files/tiny-pure/{published.pure.name}").body
    assert stored == published.pure.read_bytes()


def test_big_pages_are_gzipped_for_clients_that_ask(
    server: Server, upload_token: str, tmp_path: Path
) -> None:
    import gzip

    from index_http import upload, upload_form
    from support.projects import make_dummy_wheel

    for minor in range(8):
        wheel = make_dummy_wheel(tmp_path, "many-files", f"1.{minor}")
        assert upload(server.url, upload_token, *upload_form(wheel)).status == 200
    plain = request(server.url + "/simple/many-files/")
    assert "Content-Encoding" not in plain.headers
    assert len(plain.body) > 1024
    packed = request(
        server.url + "/simple/many-files/", headers={"Accept-Encoding": "gzip, deflate"}
    )
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.body) == plain.body
    assert packed.headers["ETag"] != plain.headers["ETag"]
    refused = request(server.url + "/simple/many-files/", headers={"Accept-Encoding": "gzip;q=0"})
    assert refused.body == plain.body
    assert len(SimplePage(plain.text).anchors) == 8


def test_head_requests_and_missing_metadata(server: Server, published: Dists) -> None:
    page = request(server.url + "/simple/tiny-pure/", "HEAD")
    assert page.status == 200
    assert page.body == b""
    assert int(page.headers["Content-Length"]) == len(
        request(server.url + "/simple/tiny-pure/").body
    )
    url = f"{server.url}/files/tiny-pure/{published.pure.name}"
    head = request(url, "HEAD")
    assert (head.status, head.body) == (200, b"")
    assert int(head.headers["Content-Length"]) == published.pure.stat().st_size
    # sdists announce no core metadata, so there is no .metadata file to fetch
    sdist_meta = request(f"{server.url}/files/tiny-pure/{published.pure_sdist.name}.metadata")
    assert sdist_meta.status == 404
