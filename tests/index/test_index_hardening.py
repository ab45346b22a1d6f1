"""Issue 14, index hardening: each test here failed against the server before its fix.

All of them run against the real server under gunicorn (the session `server` fixture)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hardening_dists import metadata, sdist_bytes, wheel_bytes
from index_http import request, upload, upload_form
from support.index_server import Server

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def put_log(server: Server, token: str, project: str, log_id: str, text: bytes):
    return request(
        f"{server.url}/api/farm/logs/{project}/{log_id}",
        "PUT",
        text,
        {"Content-Type": "text/plain"},
        token,
    )


# -- 10: every terminal escape sequence is stripped from build logs --------------------------------
def test_log_page_strips_every_terminal_escape(server: Server, upload_token: str) -> None:
    log = (
        "start\n"
        "\x1b[31mred\x1b[0m \x1b[?25l\x1b[2J\x1b[1;31;4m colours and modes\n"
        "\x1b]0;window title\x07 \x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\ osc\n"
        "\x1bP1$r0m\x1b\\ dcs \x1b7 \x1b8 \x1bc single \x1b(B charset\n"
        "\x9b31m c1 csi \x9d0;t\x9c c1 osc \x90dcs\x9c \x85 next-line\n"
        "error: the key line\n"
    ).encode()
    assert put_log(server, upload_token, "escape-demo", "esc-1", log).status == 200
    reply = request(f"{server.url}/project/escape-demo/logs/esc-1")
    assert reply.status == 200, reply.text
    body = reply.text
    for raw in ("\x1b", "\x07", "\x9b", "\x9c", "\x9d", "\x90", "\x85"):
        assert raw not in body, (raw, body)
    for kept in ("red", "colours and modes", "link", "osc", "dcs", "single", "charset", "c1 csi"):
        assert kept in body
    assert "window title" not in body and "evil.example" not in body


# -- 8: malformed URLs are 4xx, never 500 ---------------------------------------------------------
BAD_SEGMENTS = [
    "a\\b", "a%5Cb", "%00", "a%00b", "x.whl%00.metadata", "%0d%0aSet-Cookie:%20x=1", "a%0ab",
    "%e2%80%ae", "%ff%fe", "..", "%2e%2e", "a%2fb", "~", "a%20b", "-", "_", ".", "%20",
]  # fmt: skip
TEMPLATES = [
    "/simple/{}/", "/simple/{}", "/project/{}/", "/project/tiny-native/logs/{}",
    "/project/{}/logs/x", "/files/{}/x.whl", "/files/tiny-native/{}", "/files/tiny-native/{}.metadata",
    "/provenance/{}.json", "/provenance/{}", "/{}", "/api/farm/status/{}",
]  # fmt: skip


def test_malformed_urls_are_never_a_500(server: Server, published) -> None:
    wheel = published.native.name
    extra = [f"/files/tiny-native/{wheel}%00.metadata", f"/files/tiny-native/{wheel[:-4]}%00.whl"]
    failures = []
    for path in [t.format(s) for t in TEMPLATES for s in BAD_SEGMENTS] + extra:
        for method in ("GET", "HEAD"):
            reply = request(server.url + path, method)
            if reply.status >= 500:
                failures.append((method, path, reply.status, reply.text[:200]))
    assert not failures, failures


def test_crlf_in_a_project_name_never_reaches_a_location(server: Server) -> None:
    reply = request(server.url + "/simple/A%0d%0aSet-Cookie:%20x=1/")
    assert 400 <= reply.status < 500, (reply.status, reply.text)
    assert "Set-Cookie" not in reply.headers


# -- 11: the Host header is not echoed into a publicly cacheable page ------------------------------
def test_host_header_is_not_cached_publicly(server: Server) -> None:
    reply = request(server.url + "/", headers={"Host": "evil.example"})
    assert reply.status == 200
    if "evil.example" in reply.text:
        assert "public" not in reply.headers.get("Cache-Control", "")
        assert "host" in reply.headers.get("Vary", "").lower()


# -- 7: wheel names outside ASCII are refused at upload ---------------------------------------------
def test_non_ascii_wheel_filename_is_refused(server: Server, upload_token: str) -> None:
    name = "ŝpam"  # U+015D: not latin-1, so no Content-Disposition could carry it
    data = wheel_bytes(f"{name}-1.0.dist-info", metadata(name, "1.0"))
    filename = f"{name}-1.0-py3-none-any.whl"
    reply = upload(server.url, upload_token, *upload_form(filename, data))
    assert reply.status == 400, (reply.status, reply.text)
    assert "ascii" in reply.text.lower() or "invalid" in reply.text.lower()
    assert request(server.url + f"/files/{quote(name)}/{quote(filename)}").status == 404


# -- 5: non-ASCII metadata ---------------------------------------------------------------------------
def test_non_ascii_summary_is_shown(server: Server, upload_token: str) -> None:
    summary = "Grüße, 日本語 and emoji 🐍"
    data = wheel_bytes("umlaut_demo-1.0.dist-info", metadata("umlaut-demo", "1.0", summary))
    reply = upload(server.url, upload_token, *upload_form("umlaut_demo-1.0-py3-none-any.whl", data))
    assert reply.status == 200, (reply.status, reply.text)
    home = request(server.url + "/")
    assert home.status == 200 and summary in home.text
    page = json.loads(request(server.url + "/simple/umlaut-demo/", headers=JSON).body)
    assert [f["filename"] for f in page["files"]] == ["umlaut_demo-1.0-py3-none-any.whl"]


def test_non_ascii_metadata_name_is_a_clear_400(server: Server, upload_token: str) -> None:
    data = wheel_bytes("nameless_demo-1.0.dist-info", metadata("Nämeless-demo", "1.0"))
    reply = upload(
        server.url, upload_token, *upload_form("nameless_demo-1.0-py3-none-any.whl", data)
    )
    assert reply.status == 400, (reply.status, reply.text)
    assert "Nämeless-demo" in reply.text or "name" in reply.text.lower()
    assert not (server.data / "files" / "nameless-demo").exists()
    assert not (server.data / "records" / "nameless-demo").exists()


# -- 1: stored XSS through an sdist filename -----------------------------------------------------
XSS_NAME = 'x"><img src=x onerror=window.__xss=1>'


def test_sdist_with_markup_in_its_name_never_runs_in_a_browser(
    server: Server, upload_token: str, published, browser
) -> None:
    """Before the fix this sdist was stored and /simple/ ran its script (the href was not escaped)."""
    data = sdist_bytes(f"{XSS_NAME}-1.0", metadata(XSS_NAME, "1.0"))
    # The multipart filename is a quoted-string: its quote is escaped so the server sees it whole.
    sent_name = f"{XSS_NAME}-1.0.tar.gz".replace('"', '\\"')
    reply = upload(server.url, upload_token, *upload_form(sent_name, data))
    assert reply.status == 400, (reply.status, reply.text)
    assert "not a valid project name" in reply.text
    for path in ("/simple/", "/", "/project/tiny-native/", "/status"):
        browser.get(server.url + path)
        assert browser.execute_script("return window.__xss === undefined"), path
    assert "<img" not in request(server.url + "/simple/").text


def test_pages_escape_hostile_values(tmp_path) -> None:
    """Defence in depth: a name or filename that got in anyway is escaped and quoted."""
    from types import SimpleNamespace

    from index_server.catalog import FileRecord, Project
    from index_server.simple import render_index_html, render_project_html
    from index_server.state import Config

    st = SimpleNamespace(config=Config(data=tmp_path))  # the renderers read the configuration only
    hostile = FileRecord(XSS_NAME, f"{XSS_NAME}-1.0.tar.gz", "1.0", "0" * 64, 1, "t")  # type: ignore[arg-type]
    project = Project(XSS_NAME, (hostile,))  # type: ignore[arg-type]
    for html in (render_index_html(st, [project]), render_project_html(st, project)):  # type: ignore[arg-type]
        assert b"<img" not in html and b'"><' not in html, html


@pytest.mark.parametrize(
    ("filename", "ok"),
    [
        ("tiny_pure-0.1.tar.gz", True),
        ("Tiny-Pure-0.1.tar.gz", True),  # legacy: a non-normalized name, as pip accepts
        ("tiny.pure-0.1.tar.gz", True),
        ("tiny pure-0.1.tar.gz", False),
        ("tiny<b>-0.1.tar.gz", False),
        ("-0.1.tar.gz", False),
        ("tiny_pure-0.1.tgz", True),  # legacy archive forms pip installs
        ("Tiny_Pure-0.1.zip", True),
        ("tiny_pure-0.1.tar.bz2", True),
        ("tiny-pure-0.1.tar.xz", True),
        ("tiny_pure-0.1.tar.lz", False),  # Python cannot read lzip
        ("tiny pure-0.1.zip", False),
    ],
)
def test_sdist_filenames(filename: str, ok: bool) -> None:
    from index_server import distfile

    if ok:
        assert distfile.parse_filename(filename).project == "tiny-pure"
    else:
        with pytest.raises(distfile.InvalidDistribution):
            distfile.parse_filename(filename)


# -- 4: one distribution, one file, whatever the spelling -------------------------------------------
def test_spellings_of_one_distribution_are_one_file(server: Server, upload_token: str) -> None:
    def wheel(filename: str, dist_info: str, version: str, payload: bytes) -> tuple[bytes, str]:
        return upload_form(
            filename, wheel_bytes(dist_info, metadata("Spell_Demo", version), payload)
        )

    first = upload(
        server.url,
        upload_token,
        *wheel("Spell_Demo-1.0-py3-none-any.whl", "Spell_Demo-1.0.dist-info", "1.0", b"a = 1\n"),
    )
    assert first.status == 200, first.text
    assert "spell_demo-1.0-py3-none-any.whl" in first.text  # stored under its canonical name
    for filename, version, payload in [
        ("spell_demo-1.0-py3-none-any.whl", "1.0", b"b = 2\n"),
        ("spell.demo-1.0-py3-none-any.whl", "1.0", b"c = 3\n"),
        ("SPELL-demo-1.0-py3-none-any.whl".replace("-demo", "_demo"), "1.0", b"d = 4\n"),
        ("spell_demo-1.0.0-py3-none-any.whl", "1.0.0", b"e = 5\n"),
        ("spell_demo-1-PY3-none-any.whl", "1", b"f = 6\n"),
    ]:
        reply = upload(
            server.url, upload_token, *wheel(filename, "spell_demo-1.0.dist-info", version, payload)
        )
        assert reply.status == 409, (filename, reply.status, reply.text)
        assert "spell_demo-1.0-py3-none-any.whl" in reply.text
    other_tag = upload(
        server.url,
        upload_token,
        *wheel("spell_demo-1.0-py2-none-any.whl", "spell_demo-1.0.dist-info", "1.0", b"g = 7\n"),
    )
    assert other_tag.status == 200, other_tag.text
    page = json.loads(request(server.url + "/simple/spell-demo/", headers=JSON).body)
    assert sorted(f["filename"] for f in page["files"]) == [
        "spell_demo-1.0-py2-none-any.whl",
        "spell_demo-1.0-py3-none-any.whl",
    ]
    assert page["versions"] == ["1.0"]


def test_legacy_sdist_forms_are_accepted_under_their_canonical_name(
    server: Server, upload_token: str
) -> None:
    for filename, fmt, version, ext, ctype in [
        ("Legacy.Demo-1.0.zip", "zip", "1.0", ".zip", "application/zip"),
        ("legacy_demo-2.0.tar.bz2", "bz2", "2.0", ".tar.bz2", "application/x-bzip2"),
    ]:
        data = sdist_bytes(filename.removesuffix(ext), metadata("Legacy.Demo", version), fmt)
        reply = upload(server.url, upload_token, *upload_form(filename, data))
        assert reply.status == 200, (filename, reply.text)
        stored = f"legacy_demo-{version}{ext}"
        assert stored in reply.text
        download = request(f"{server.url}/files/legacy-demo/{stored}")
        assert download.status == 200 and download.body == data
        assert download.headers["Content-Type"] == ctype
    # One source distribution per version, whatever its archive form.
    again = sdist_bytes("legacy_demo-1.0", metadata("legacy-demo", "1.0"))
    reply = upload(server.url, upload_token, *upload_form("legacy_demo-1.0.tar.gz", again))
    assert reply.status == 409, reply.text
    assert "legacy_demo-1.0.zip" in reply.text
