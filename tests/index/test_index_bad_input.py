"""Every bad input of the issue gets a clear 4xx and writes nothing to storage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from index_http import multipart, request, upload, upload_form
from support.index_server import MAX_UPLOAD, Server, create_token
from support.projects import make_dummy_wheel


def snapshot(data: Path) -> dict[str, int]:
    """Every stored file (temporary ones included) with its size; the generation stamp and the
    tokens file (which the token tests change on purpose) excluded."""
    out = {}
    for dirpath, _dirs, files in os.walk(data):
        for name in files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(data))
            if rel != "generation" and not rel.startswith("auth/"):
                out[rel] = path.stat().st_size
    return out


@pytest.fixture
def unchanged(server: Server):
    """Asserts that the test left storage exactly as it found it."""
    before = snapshot(server.data)
    yield
    assert snapshot(server.data) == before


def good_wheel(tmp_path: Path, **kwargs) -> Path:
    return make_dummy_wheel(tmp_path, "bad-input-probe", "1.0", **kwargs)


def expect(reply, status: int, *words: str) -> None:
    assert reply.status == status, (reply.status, reply.text)
    for word in words:
        assert word.lower() in reply.text.lower(), reply.text
    assert reply.text.strip(), "the message must say what is wrong"


@pytest.mark.parametrize(
    ("filename", "words"),
    [
        ("../evil-1.0-py3-none-any.whl", ["filename"]),
        ("sub/evil-1.0-py3-none-any.whl", ["path separators"]),
        ("..\\evil-1.0-py3-none-any.whl", ["filename"]),  # quoted-string: the server sees ..evil
        ("notes.txt", ["not a wheel"]),
        ("evil-1.0.zip", ["not a zip"]),  # a legacy sdist form, so it is opened (and refused)
        ("evil-1.0.rar", ["not a wheel"]),
        ("evil-1.0-py3-none.whl", ["invalid"]),
        ("evil-notaversion!.tar.gz", ["invalid"]),
    ],
)
def test_bad_filenames(server: Server, upload_token: str, unchanged, filename, words) -> None:
    reply = upload(server.url, upload_token, *upload_form(filename, b"PK\x03\x04 whatever"))
    expect(reply, 400, *words)


def test_wheel_that_is_not_a_zip(server: Server, upload_token: str, unchanged) -> None:
    reply = upload(
        server.url, upload_token, *upload_form("probe-1.0-py3-none-any.whl", b"not a zip" * 50)
    )
    expect(reply, 400, "not a zip")


def test_sdist_that_is_not_a_tarball(server: Server, upload_token: str, unchanged) -> None:
    reply = upload(server.url, upload_token, *upload_form("probe-1.0.tar.gz", b"\x1f\x8b broken"))
    expect(reply, 400, "tar")


def test_wheel_whose_metadata_names_another_project(
    server: Server, upload_token: str, unchanged, tmp_path: Path
) -> None:
    wheel = good_wheel(tmp_path, metadata_name="someone-else")
    expect(upload(server.url, upload_token, *upload_form(wheel)), 400, "someone-else")


def test_wheel_whose_metadata_has_another_version(
    server: Server, upload_token: str, unchanged, tmp_path: Path
) -> None:
    wheel = good_wheel(tmp_path, metadata_version="2.0")
    expect(upload(server.url, upload_token, *upload_form(wheel)), 400, "version 2.0")


def test_form_name_that_disagrees_with_the_file(
    server: Server, upload_token: str, unchanged, tmp_path: Path
) -> None:
    wheel = good_wheel(tmp_path)
    expect(upload(server.url, upload_token, *upload_form(wheel, name="other")), 400, "name")


@pytest.mark.parametrize("field", ["sha256_digest", "md5_digest", "blake2_256_digest"])
def test_digest_mismatch(
    server: Server, upload_token: str, unchanged, tmp_path: Path, field
) -> None:
    wheel = good_wheel(tmp_path)
    wrong = hashlib.new("sha256" if field != "md5_digest" else "md5", b"other").hexdigest()
    expect(upload(server.url, upload_token, *upload_form(wheel, **{field: wrong})), 400, field)


def test_missing_wrong_and_read_only_tokens(server: Server, unchanged, tmp_path: Path) -> None:
    wheel = good_wheel(tmp_path)
    body, ctype = upload_form(wheel)
    missing = upload(server.url, None, body, ctype)
    expect(missing, 401, "token")
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    expect(upload(server.url, "wf_not-a-real-token", body, ctype), 401, "invalid")
    reader = create_token(server.data, "reader", scope="read")
    expect(upload(server.url, reader, body, ctype), 403, "may read but not upload")


def test_revoked_token_is_refused(server: Server, unchanged, tmp_path: Path) -> None:
    import subprocess

    token = create_token(server.data, "short-lived")
    subprocess.run(
        ["wheelfarm", "token", "revoke", "short-lived", "--data", str(server.data)], check=True
    )
    reply = upload(server.url, token, *upload_form(good_wheel(tmp_path)))
    expect(reply, 401, "revoked")


def test_oversize_upload(server: Server, upload_token: str, unchanged, tmp_path: Path) -> None:
    wheel = good_wheel(tmp_path, payload=b"#" + os.urandom(MAX_UPLOAD).hex().encode())
    expect(upload(server.url, upload_token, *upload_form(wheel)), 413, f"limit is {MAX_UPLOAD}")


def test_malformed_multipart(server: Server, upload_token: str, unchanged) -> None:
    body = b"--nope\r\nthis is not what the boundary says\r\n"
    reply = upload(server.url, upload_token, body, "multipart/form-data; boundary=xyz")
    expect(reply, 400, "multipart")
    reply = upload(server.url, upload_token, b"{}", "application/json")
    expect(reply, 400, "multipart/form-data")


def test_wrong_action_and_missing_file(server: Server, upload_token: str, unchanged) -> None:
    body, ctype = multipart({":action": "submit", "name": "x"}, [])
    expect(upload(server.url, upload_token, body, ctype), 400, "file_upload")
    body, ctype = multipart({":action": "file_upload"}, [])
    expect(upload(server.url, upload_token, body, ctype), 400, "content")


def test_unknown_project_is_404(server: Server, unchanged) -> None:
    expect(request(server.url + "/simple/no-such-project/"), 404, "no-such-project")
    expect(request(server.url + "/project/no-such-project/"), 404, "no-such-project")
    expect(request(server.url + "/files/no-such-project/x-1.0-py3-none-any.whl"), 404, "no file")


def test_wrong_method_is_405(server: Server, unchanged) -> None:
    expect(request(server.url + "/legacy/"), 405, "GET")
    expect(request(server.url + "/simple/", "POST", b""), 405, "POST")
    expect(request(server.url + "/simple/", "DELETE"), 405, "DELETE")
    reply = request(server.url + "/files/x/y.whl", "PUT", b"data")
    expect(reply, 405, "PUT")
    assert "GET" in reply.headers["Allow"]
