"""Killing the server in the middle of an upload leaves no partial file and no stale page."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import time
from pathlib import Path

from index_http import basic, request, upload, upload_form
from support.index_server import create_token, start_server
from support.projects import make_dummy_wheel


def stored_files(data: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(data)) for d, _, files in os.walk(data) for f in files)


def test_kill_during_a_slow_upload(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_token(data, "crash")
    server = start_server(data, workers=1)
    wheel = make_dummy_wheel(
        tmp_path / "w", "slow-upload", "1.0", payload=b"#" + os.urandom(200_000).hex().encode()
    )
    body, ctype = upload_form(wheel)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("POST", "/legacy/")
        conn.putheader("Content-Type", ctype)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Authorization", basic(token))
        conn.endheaders()
        half = len(body) // 2
        for start in range(0, half, 16_384):  # a slow client: the server is mid-body for a while
            conn.send(body[start : min(start + 16_384, half)])
            time.sleep(0.02)
        server.kill()
        conn.close()
    finally:
        server.kill()
    after_kill = stored_files(data)
    assert not [f for f in after_kill if f.endswith(".part") or "slow" in f], after_kill

    server = start_server(data, workers=1)
    try:
        assert request(server.url + "/simple/slow-upload/").status == 404
        index = json.loads(
            request(
                server.url + "/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
            ).body
        )
        assert index["projects"] == []
        # Nothing half-stored blocks the real upload afterwards.
        reply = upload(server.url, token, body, ctype)
        assert reply.status == 200, reply.text
        page = json.loads(
            request(
                server.url + "/simple/slow-upload/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            ).body
        )
        assert (
            page["files"][0]["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
        )
    finally:
        server.stop()


def test_restart_repairs_what_a_kill_between_writes_leaves(tmp_path: Path) -> None:
    """The two other places a kill can land: inside the atomic write (a temporary file of a dead
    writer remains) and between storing the file and its record (a complete, unpublished file)."""
    data = tmp_path / "data"
    wheel = make_dummy_wheel(tmp_path / "w", "half-done", "1.0")
    folder = data / "files" / "half-done"
    folder.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = folder / f".half_done-2.0-py3-none-any.whl.{dead.pid}.abc123.part"
    leftover.write_bytes(b"PK partial")
    (folder / wheel.name).write_bytes(wheel.read_bytes())

    server = start_server(data, workers=1)
    try:
        assert not leftover.exists()
        page = json.loads(
            request(
                server.url + "/simple/half-done/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            ).body
        )
        assert [f["filename"] for f in page["files"]] == [wheel.name]
        assert (
            page["files"][0]["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
        )
        assert page["files"][0]["core-metadata"]
    finally:
        server.stop()


def test_a_worker_recovers_an_unpublished_file_it_meets(tmp_path: Path) -> None:
    """A worker killed between storing a file and its record leaves an unpublished file; the worker
    that meets it on a re-upload publishes it instead of answering 409 for a file nobody can see
    (which `twine --skip-existing` would skip forever)."""
    data = tmp_path / "data"
    token = create_token(data, "orphans")
    server = start_server(data, workers=1)
    try:
        wheel = make_dummy_wheel(tmp_path / "w", "orphan-demo", "1.0")
        folder = data / "files" / "orphan-demo"
        folder.mkdir(parents=True)
        (folder / wheel.name).write_bytes(wheel.read_bytes())  # what the killed worker left
        assert request(server.url + "/simple/orphan-demo/").status == 404
        result = subprocess.run(
            ["twine", "upload", "--non-interactive", "--disable-progress-bar", "--skip-existing",
             "--repository-url", f"{server.url}/legacy/", "-u", "__token__", "-p", token, str(wheel)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        page = json.loads(
            request(
                server.url + "/simple/orphan-demo/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            ).body
        )
        assert [f["filename"] for f in page["files"]] == [wheel.name]
        assert (
            page["files"][0]["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
        )
        assert (data / "records" / "orphan-demo" / f"{wheel.name}.json").exists()
    finally:
        server.stop()
