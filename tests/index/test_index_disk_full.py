"""The real index server (gunicorn) with its storage on a tiny tmpfs that fills up.

A full disk must cost only the upload (or yank, or token) that did not fit: a clear 507, nothing
half-written left behind, every earlier file served byte for byte, and the space usable again once
it is freed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
from support.index_server import Server, create_token, start_server
from support.projects import make_dummy_wheel
from support.tiny_disk import TinyDisk, tiny_disk_unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(tiny_disk_unavailable() is not None, reason=str(tiny_disk_unavailable())),
]

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def wheel(tmp: Path, version: str) -> Path:
    """About 7.8 kB: two 4 kB pages of the tmpfs, plus one each for its .metadata and record."""
    payload = b"#" + os.urandom(6000).hex().encode()
    return make_dummy_wheel(tmp / "wheels", "fill-up", version, payload=payload)


def upload(server: Server, token: str, path: Path) -> httpx.Response:
    return httpx.post(
        server.url + "/legacy/",
        auth=("__token__", token),
        data={":action": "file_upload", "sha256_digest": sha(path.read_bytes())},
        files={"content": (path.name, path.read_bytes())},
        timeout=30,
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listed(server: Server) -> dict[str, dict]:
    reply = httpx.get(server.url + "/simple/fill-up/", headers=JSON, timeout=30)
    if reply.status_code == 404:
        return {}
    return {f["filename"]: f for f in reply.json()["files"]}


def leftovers(disk: TinyDisk) -> list[str]:
    """Temporary files anywhere in the storage (what a write cut short would leave)."""
    return [
        str(Path(d, f).relative_to(disk.view))
        for d, _, files in os.walk(disk.view)
        for f in files
        if f.startswith(".") or f.endswith(".part")
    ]


def assert_serves_exactly(server: Server, good: dict[str, bytes]) -> None:
    files = listed(server)
    assert sorted(files) == sorted(good)
    for name, data in good.items():
        assert files[name]["hashes"]["sha256"] == sha(data)
        body = httpx.get(
            httpx.URL(server.url + "/simple/fill-up/").join(files[name]["url"])
        ).content
        assert body == data, name


def test_a_full_index_disk_refuses_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    with TinyDisk(tmp_path / "index", size_kb=160) as disk:
        data = disk.mountpoint
        token = create_token(data, "filler", wrap=disk.wrap)
        # Someone else's data on the same disk, removed at the end to make room again.
        other = disk.view / "ballast-other"
        other.write_bytes(b"\0" * 40960)
        tokens_before = (disk.view / "auth/tokens.json").read_bytes()
        server = start_server(data, workers=2, wrap=disk.wrap)
        try:
            # Upload until the disk refuses one.
            good: dict[str, bytes] = {}
            for n in range(60):
                path = wheel(tmp_path, f"1.{n}")
                reply = upload(server, token, path)
                if reply.status_code != 200:
                    break
                good[path.name] = path.read_bytes()
            else:
                pytest.fail("the 160 kB disk never filled up")
            assert len(good) >= 5
            assert reply.status_code == 507, reply.text
            assert "storage is full" in reply.text and "No space left" in reply.text
            assert len(reply.text.strip().splitlines()) == 1  # a message, not a traceback
            refused = path
            assert leftovers(disk) == []
            assert refused.name not in os.listdir(disk.view / "files/fill-up")
            assert_serves_exactly(server, good)

            # Room for the file but not for its metadata and record: the upload is taken back.
            first = sorted(good)[0]
            disk.fill(leave_kb=0)
            os.truncate(other, other.stat().st_size - 8192)  # two pages free: the file only
            assert disk.free_kb() == 8
            reply = upload(server, token, refused)
            assert reply.status_code == 507, reply.text
            assert "files/fill-up/" in reply.text and ".metadata" in reply.text
            assert refused.name not in os.listdir(disk.view / "files/fill-up")
            assert leftovers(disk) == [] and disk.free_kb() == 8
            assert_serves_exactly(server, good)

            # Yanking and token creation on a full disk fail cleanly and change nothing.
            disk.fill(leave_kb=0)
            record = disk.view / "records/fill-up" / f"{first}.json"
            record_before = record.read_bytes()
            reply = httpx.post(
                server.url + "/api/projects/fill-up/yank",
                auth=("__token__", token),
                json={"target": first, "reason": "full disk"},
            )
            assert reply.status_code == 507 and "storage is full" in reply.text, reply.text
            assert record.read_bytes() == record_before
            assert listed(server)[first].get("yanked", False) is False
            made = disk.run(["wheelfarm", "token", "create", "late", "--data", str(data)])
            assert made.returncode == 1
            assert made.stderr.startswith(f"Error: {data}: the index storage is full")
            assert "Traceback" not in made.stderr
            assert (disk.view / "auth/tokens.json").read_bytes() == tokens_before
            assert leftovers(disk) == []

            # The token still works, nothing lost across a restart, and freed space is usable.
            server.stop()
            server = start_server(data, workers=2, wrap=disk.wrap)
            assert_serves_exactly(server, good)
            assert leftovers(disk) == []
            for ballast in disk.view.glob("ballast*"):
                ballast.unlink()
            reply = upload(server, token, refused)
            assert reply.status_code == 200, reply.text
            good[refused.name] = refused.read_bytes()
            assert_serves_exactly(server, good)
            reply = httpx.post(
                server.url + "/api/projects/fill-up/yank",
                auth=("__token__", token),
                json={"target": first, "reason": "now it fits"},
            )
            assert reply.status_code == 200, reply.text
            assert listed(server)[first]["yanked"] == "now it fits"
            tokens = json.loads((disk.view / "auth/tokens.json").read_bytes())["tokens"]
            assert [t["name"] for t in tokens] == ["filler"]
        finally:
            server.stop()
