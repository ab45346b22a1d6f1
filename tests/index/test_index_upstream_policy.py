"""Public-name shadowing (issue 14 item 12): the index refuses versions of public projects that the
upstream lacks, keeps projects the upstream lacks private, and warns when such a name appears
upstream later. The upstream is a local static PEP 691 index; one e2e test asks PyPI itself."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from index_http import request, upload, upload_form
from support.index_server import create_token, start_server, twine_upload
from support.projects import make_dummy_wheel
from support.static_index import FileSpec, StaticIndexServer, write_static_index


def _upstream_wheel(name: str, version: str) -> FileSpec:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.py", b"")
    dist = name.replace("-", "_")
    return FileSpec(f"{dist}-{version}-py3-none-any.whl", buf.getvalue())


@pytest.fixture
def upstream(tmp_path: Path):
    root = tmp_path / "upstream"
    write_static_index(root, {"public-demo": [_upstream_wheel("public-demo", "1.0")]})
    with StaticIndexServer(root) as srv:
        yield root, srv


def test_uploads_may_not_shadow_public_projects(tmp_path: Path, upstream) -> None:
    root, up = upstream
    data = tmp_path / "data"
    token = create_token(data, "ci")
    server = start_server(data, workers=1, upstream=up.url)
    wheels = tmp_path / "wheels"
    try:
        # A rebuild of a public release: accepted.
        rebuild = make_dummy_wheel(wheels, "public-demo", "1.0", tag="cp311-cp311-linux_aarch64")
        assert twine_upload(server.url, token, rebuild).returncode == 0
        # A version the upstream lacks: refused, naming the policy, nothing stored.
        body, ctype = upload_form(make_dummy_wheel(wheels, "public-demo", "99.0"))
        refused = upload(server.url, token, body, ctype)
        assert refused.status == 403, (refused.status, refused.text)
        assert "public-name-shadowing" in refused.text and "public-demo" in refused.text
        assert not list((data / "files" / "public-demo").glob("*99.0*"))
        # A project the upstream lacks is private to this index: accepted, no warning yet.
        private = make_dummy_wheel(wheels, "private-demo", "1.0")
        assert twine_upload(server.url, token, private).returncode == 0
        assert (data / "policy" / "private" / "private-demo.json").exists()
        assert not (data / "policy" / "private" / "public-demo.json").exists()
        for path in ("/status", "/project/private-demo/"):
            assert 'id="shadowed"' not in request(server.url + path).text
        # The private name appears upstream: both pages warn.
        write_static_index(
            root,
            {
                "public-demo": [_upstream_wheel("public-demo", "1.0")],
                "private-demo": [_upstream_wheel("private-demo", "5.0")],
            },
        )
        for path in ("/status", "/project/private-demo/"):
            page = request(server.url + path).text
            assert 'id="shadowed"' in page and "private-demo" in page, path
        assert 'id="shadowed"' not in request(server.url + "/project/public-demo/").text
    finally:
        server.stop()


def test_an_unreachable_upstream_refuses_rather_than_guesses(tmp_path: Path) -> None:
    from support.index_server import free_port

    data = tmp_path / "data"
    token = create_token(data, "ci")
    server = start_server(data, workers=1, upstream=f"http://127.0.0.1:{free_port()}/simple/")
    try:
        body, ctype = upload_form(make_dummy_wheel(tmp_path / "w", "anything", "1.0"))
        reply = upload(server.url, token, body, ctype)
        assert reply.status == 503, (reply.status, reply.text)
        assert "--upstream none" in reply.text
    finally:
        server.stop()


def test_publish_applies_the_same_rule(tmp_path: Path, upstream) -> None:
    from builder.common.upstream import IndexClient
    from builder.publish import REFUSED, Destination, publish

    _root, up = upstream
    data = tmp_path / "data"
    token = create_token(data, "ci")
    server = start_server(data, workers=1)
    try:
        wheel = make_dummy_wheel(tmp_path / "w", "public-demo", "2.0")
        with IndexClient(up.url, cache=False) as client:
            [result] = publish(
                [wheel], Destination.for_index(server.url, token), upstream=client, check=False
            )
        assert result.status == REFUSED
        assert "public-name-shadowing" in result.reason
        assert request(server.url + "/simple/public-demo/").status == 404
    finally:
        server.stop()


@pytest.mark.e2e
def test_pypi_names_are_not_shadowed(tmp_path: Path) -> None:
    """Against PyPI itself: requests 99.0.0 does not exist there, so it is refused."""
    data = tmp_path / "data"
    token = create_token(data, "ci")
    server = start_server(data, workers=1, upstream="pypi")
    try:
        body, ctype = upload_form(make_dummy_wheel(tmp_path / "w", "requests", "99.0.0"))
        reply = upload(server.url, token, body, ctype)
        assert reply.status == 403, (reply.status, reply.text)
        assert "public-name-shadowing" in reply.text and "pypi.org" in reply.text
    finally:
        server.stop()
