"""Yanking (CLI and API), what every gunicorn worker sees, and a private index through pip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from index_http import SimplePage, request, upload, upload_form
from support.index_server import Dists, Server, create_token, start_server
from support.projects import make_dummy_wheel

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def files_of(server: Server, project: str) -> dict[str, dict]:
    body = json.loads(request(f"{server.url}/simple/{project}/", headers=JSON).body)
    return {f["filename"]: f for f in body["files"]}


def test_every_worker_sees_a_new_upload_at_once(
    server: Server, upload_token: str, tmp_path: Path
) -> None:
    wheel = make_dummy_wheel(tmp_path, "fresh-news", "1.0")
    assert upload(server.url, upload_token, *upload_form(wheel)).status == 200
    # 20 fresh connections spread over both workers: none may serve a page from before the upload.
    for _ in range(20):
        assert wheel.name in files_of(server, "fresh-news")
    assert b"fresh-news" in request(server.url + "/simple/").body


def test_yank_and_unyank_with_the_cli(server: Server, published: Dists) -> None:
    wheel = published.pure.name
    out = subprocess.run(
        [
            "wheelfarm",
            "yank",
            "Tiny_Pure",
            "0.1",
            "--reason",
            "broken <build>",
            "--data",
            str(server.data),
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert {f["filename"] for f in json.loads(out.stdout)} == {wheel, published.pure_sdist.name}
    for _ in range(10):
        assert files_of(server, "tiny-pure")[wheel]["yanked"] == "broken <build>"
    anchors = SimplePage(request(server.url + "/simple/tiny-pure/").text).by_name()
    assert anchors[wheel]["data-yanked"] == "broken <build>"
    # pip skips yanked files unless pinned exactly.
    dl = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-cache-dir",
            "--no-deps",
            "-d",
            str(server.data.parent / "dl"),
            "--index-url",
            f"{server.url}/simple/",
            "tiny-pure>=0.1",
        ],
        capture_output=True,
        text=True,
    )
    assert dl.returncode != 0
    subprocess.run(
        ["wheelfarm", "unyank", "tiny-pure", wheel, "--data", str(server.data)], check=True
    )
    subprocess.run(
        ["wheelfarm", "unyank", "tiny-pure", published.pure_sdist.name, "--data", str(server.data)],
        check=True,
    )
    for _ in range(10):
        assert files_of(server, "tiny-pure")[wheel]["yanked"] is False
    assert (
        "data-yanked"
        not in SimplePage(request(server.url + "/simple/tiny-pure/").text).by_name()[wheel]
    )
    bad = subprocess.run(
        ["wheelfarm", "yank", "tiny-pure", "9.9", "--data", str(server.data)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "no file or version '9.9'" in bad.stderr


def test_yank_api_needs_an_upload_token(
    server: Server, published: Dists, upload_token: str
) -> None:
    url = f"{server.url}/api/projects/tiny-native/yank"
    body = json.dumps({"target": published.native.name, "reason": "test"}).encode()
    headers = {"Content-Type": "application/json"}
    assert request(url, "POST", body, headers).status == 401
    reply = request(url, "POST", body, headers, upload_token)
    assert reply.status == 200, reply.text
    assert files_of(server, "tiny-native")[published.native.name]["yanked"] == "test"
    unyank = f"{server.url}/api/projects/tiny-native/unyank"
    reply = request(unyank, "POST", json.dumps({"target": "1.0"}).encode(), headers, upload_token)
    assert reply.status == 200, reply.text
    assert files_of(server, "tiny-native")[published.native.name]["yanked"] is False
    missing = request(unyank, "POST", json.dumps({"target": "7"}).encode(), headers, upload_token)
    assert missing.status == 404


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("private") / "data"
    uploader = create_token(data, "uploader")
    reader = create_token(data, "reader", scope="read")
    srv = start_server(data, private=True, workers=1)
    yield srv, uploader, reader
    srv.stop()


def test_private_index_needs_a_token_to_read(private_server, tmp_path: Path) -> None:
    server, uploader, reader = private_server
    wheel = make_dummy_wheel(tmp_path / "w", "secret-sauce", "2.0")
    assert upload(server.url, uploader, *upload_form(wheel)).status == 200
    for path in ("/", "/simple/", "/simple/secret-sauce/", f"/files/secret-sauce/{wheel.name}"):
        anonymous = request(server.url + path)
        assert anonymous.status == 401, path
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
        assert request(server.url + path, token="wf_wrong").status == 401
        assert request(server.url + path, token=reader).status == 200, path

    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True
    )
    index = f"http://__token__:{reader}@127.0.0.1:{server.port}/simple/"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--no-cache-dir",
            "--python",
            str(python),
            "install",
            "--index-url",
            index,
            "secret-sauce",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = subprocess.run(
        [str(python), "-c", "import secret_sauce; print(secret_sauce.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "2.0"
    denied = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--no-cache-dir",
            "download",
            "--no-deps",
            "-d",
            str(tmp_path / "dl"),
            "--index-url",
            f"http://127.0.0.1:{server.port}/simple/",
            "--no-input",
            "secret-sauce",
        ],
        capture_output=True,
        text=True,
    )
    assert denied.returncode != 0


def test_token_list_shows_no_secrets(server: Server, upload_token: str) -> None:
    out = subprocess.run(
        ["wheelfarm", "token", "list", "--json", "--data", str(server.data)],
        check=True,
        capture_output=True,
        text=True,
    )
    tokens = json.loads(out.stdout)
    assert "ci" in {t["name"] for t in tokens}
    assert upload_token not in out.stdout
    assert all("sha256" not in t for t in tokens)
    stored = (server.data / "auth" / "tokens.json").read_text()
    assert upload_token not in stored
