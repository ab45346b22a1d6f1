"""The farm API (status, logs, provenance), its client, and the pages it feeds, against the real app
under real gunicorn (2 workers) and, for the pages, a real headless Chromium."""

from __future__ import annotations

import copy
import hashlib
import html
import json
from pathlib import Path

import pytest
from index_http import request
from support.index_server import Server, create_token, start_server, twine_upload
from support.projects import make_dummy_wheel

from builder.common.farm_protocol import MAX_LOG_BYTES, MAX_PROVENANCE_BYTES, MAX_STATUS_BYTES
from builder.farm.client import FarmClient, FarmClientError, log_tail
from index_server.farm import strip_ansi

PROJECT = "farm-demo"
TARGET = "manylinux_2_17_aarch64"
KEY_LINE = "src/demo.c:3:10: fatal error: 'rdkafka.h' file not found"
LOG = (
    "== building farm-demo 2.0 for cp312 <aarch64> ==\n"
    "zig cc -O2 -c src/demo.c\n"
    f"{KEY_LINE}\n"
    "    3 | #include <rdkafka.h>\n"
    "\x1b[31merror:\x1b[0m command 'zig' failed with exit code 1\n"
)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory):
    """A fresh index (2 workers) with an upload token, a read token, and one uploaded wheel."""
    root = tmp_path_factory.mktemp("farm")
    data = root / "data"
    tokens = {"upload": create_token(data, "nightly"), "read": create_token(data, "laptop", "read")}
    server = start_server(data)
    wheel = make_dummy_wheel(root / "dist", PROJECT, "2.0", tag=f"cp311-cp311-{TARGET}")
    up = twine_upload(server.url, tokens["upload"], wheel)
    assert up.returncode == 0, up.stdout + up.stderr
    yield server, tokens, wheel
    server.stop()


def status_doc(wheel: str, generated: str = "2026-11-22T04:00:00Z") -> dict:
    cell = {"project": PROJECT, "version": "2.0", "target": TARGET}
    return {
        "generated": generated,
        "run": {
            "id": "run-7",
            "started": "2026-11-22T03:00:00Z",
            "finished": generated,
            "counts": {"published": 1, "failed": 1, "skipped": 1},
            "errors": ["recipes/broken.toml: [build] backend: 'fast' is not one of <the backends>"],
        },
        "recipes": {
            PROJECT: {
                "recipe_path": "recipes/farm-demo.toml",
                "recipe_text": '[project]\nname = "farm-demo"\npythons = ["3.11", "3.12"]  # <b>not bold</b>\n',
                "recipe_hash": "d" * 64,
            }
        },
        "cells": [
            {**cell, "python": "3.11", "status": "published", "wheel": wheel, "log": "run-7-cp311"},
            {
                **cell,
                "python": "3.12",
                "status": "failed",
                "reason": "compile error",
                "failure_class": "missing-header",
                "key_line": KEY_LINE,
                "log": "run-7-cp312",
                "duration": 12.5,
                "when": "2026-11-22T03:30:00Z",
            },
            {
                "project": PROJECT,
                "version": "1.0",
                "python": "3.11",
                "target": TARGET,
                "status": "upstream",
            },
        ],
    }


def provenance(**extra) -> dict:
    return {
        "sdist_url": "https://files.example/farm_demo-2.0.tar.gz",
        "sdist_sha256": "a" * 64,
        "recipe_hash": "d" * 64,
        "toolchain": {"zig": "0.13.0", "auditwheel": "6.1.0"},
        "builder_host": "builder-1",
        "build_time": "2026-11-22T03:10:00Z",
        "checker": {"ok": True, "findings": []},
        **extra,
    }


def files_under(data: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data)): p.read_bytes()
        for p in sorted(data.rglob("*"))
        if p.is_file() and p.name != "generation"
    }


def put(server: Server, path: str, body: bytes, token: str | None, ctype="application/json"):
    return request(server.url + path, "PUT", body, {"Content-Type": ctype}, token)


# -- status --------------------------------------------------------------------------------------
def test_pages_without_farm_data_still_work(server: Server) -> None:
    reply = request(server.url + "/status")
    assert reply.status == 200
    assert 'id="no-status"' in reply.text
    assert request(server.url + "/api/farm/status").status == 404
    assert request(server.url + "/project/no-such-thing/").status == 404


def test_status_is_stored_and_every_worker_sees_it_at_once(farm) -> None:
    server, tokens, wheel = farm
    with FarmClient(server.url + "/simple/", tokens["upload"]) as client:
        for generated in ("2026-11-22T04:00:00Z", "2026-11-22T04:00:01Z"):
            answer = client.put_status(status_doc(wheel.name, generated))
            assert answer == {"generated": generated, "cells": 3, "recipes": 1, "url": "/status"}
            stored = request(server.url + "/api/farm/status")
            assert json.loads(stored.body) == status_doc(wheel.name, generated)
            # 20 fresh connections spread over both workers: none may show the previous status.
            for _ in range(20):
                page = request(server.url + "/status").text
                assert f"Status generated {generated}." in page
                assert 'data-status="failed"><strong>1</strong> failed' in page
                assert "run-7-cp312" in request(server.url + f"/project/{PROJECT}/").text


def test_a_project_with_farm_data_but_no_files_has_a_page(farm) -> None:
    server, tokens, wheel = farm
    doc = status_doc(wheel.name)
    doc["cells"].append(
        {
            "project": "Only_Failed",
            "version": "0.3",
            "python": "3.12",
            "target": TARGET,
            "status": "failed",
            "failure_class": "compiler-error",
            "key_line": "x.c:1:1: error: expected ';'",
        }
    )
    doc["cells"].append({**doc["cells"][-1], "version": "0.4", "status": "up-to-date"})
    with FarmClient(server.url, tokens["upload"]) as client:
        client.put_status(doc)
    page = request(server.url + "/project/only-failed/")
    assert page.status == 200
    assert 'id="no-files"' in page.text and 'id="pip-command"' not in page.text
    assert 'data-status="failed"' in page.text and 'data-status="up-to-date"' in page.text
    # Rows: newest version first.
    assert page.text.index('data-version="0.4"') < page.text.index('data-version="0.3"')
    assert request(server.url + "/project/Only.Failed/").status == 301
    assert 'href="/project/only-failed/"' in request(server.url + "/status").text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["cells"][0].update(status="exploded"),
            "at .cells[0].status: 'exploded' is not one of",
        ),
        (lambda d: d.pop("recipes"), "'recipes' is a required property"),
        (lambda d: d["cells"][0].update(colour="red"), "Additional properties are not allowed"),
        (
            lambda d: d["cells"][0].update(project="../etc"),
            "cells[0]: invalid project name '../etc'",
        ),
        (lambda d: d["cells"][0].update(version="two"), "cells[0]: invalid version 'two'"),
        (lambda d: d["cells"][1].update(log="../../auth/tokens"), "at .cells[1].log"),
        (lambda d: d["cells"][1].update(log="a..b"), "cells[1]: invalid log id 'a..b'"),
        (
            lambda d: d["cells"][0].update(wheel="other-2.0-py3-none-any.whl"),
            "is not a wheel of farm-demo 2.0",
        ),
        (lambda d: d["cells"].append(dict(d["cells"][0])), "a second cell for farm-demo 2.0"),
        (
            lambda d: d.update(generated="yesterday"),
            "generated: 'yesterday' is not an ISO 8601 time",
        ),
        (
            lambda d: d["recipes"].update({"bad name!": d["recipes"][PROJECT]}),
            "invalid project name",
        ),
    ],
)
def test_status_schema_and_name_violations_are_refused(farm, edit, message) -> None:
    server, tokens, wheel = farm
    before = files_under(server.data)
    doc = copy.deepcopy(status_doc(wheel.name))
    edit(doc)
    reply = put(server, "/api/farm/status", json.dumps(doc).encode(), tokens["upload"])
    assert reply.status == 400, reply.text
    assert message in reply.text
    assert files_under(server.data) == before


def test_status_refusals(farm) -> None:
    server, tokens, wheel = farm
    before = files_under(server.data)
    body = json.dumps(status_doc(wheel.name)).encode()
    cases = [
        (put(server, "/api/farm/status", body, None), 401, "needs an upload token"),
        (put(server, "/api/farm/status", body, "wf_wrong"), 401, "invalid or revoked token"),
        (put(server, "/api/farm/status", body, tokens["read"]), 403, "may read but not write"),
        (put(server, "/api/farm/status", b"{not json", tokens["upload"]), 400, "not valid JSON"),
        (put(server, "/api/farm/status", b"[]", tokens["upload"]), 400, "is not of type 'object'"),
        (
            put(server, "/api/farm/status", body, tokens["upload"], ctype="text/plain"),
            415,
            "expected Content-Type application/json",
        ),
        (
            put(server, "/api/farm/status", b" " * (MAX_STATUS_BYTES + 1), tokens["upload"]),
            413,
            f"the limit is {MAX_STATUS_BYTES} bytes",
        ),
        (request(server.url + "/api/farm/status", "POST", body), 405, "not allowed"),
    ]
    for reply, code, message in cases:
        assert (reply.status, message in reply.text) == (code, True), reply.text
    assert files_under(server.data) == before
    with pytest.raises(FarmClientError) as info, FarmClient(server.url, tokens["read"]) as client:
        client.put_status(status_doc(wheel.name))
    assert str(info.value).startswith(f"PUT {server.url}/api/farm/status: 403: token 'laptop'")


# -- logs ----------------------------------------------------------------------------------------
def test_logs_are_stored_and_shown_escaped_with_the_key_line(farm, tmp_path: Path) -> None:
    server, tokens, wheel = farm
    path = tmp_path / "build.log"
    path.write_text(LOG)
    with FarmClient(server.url, tokens["upload"]) as client:
        client.put_status(status_doc(wheel.name))
        answer = client.put_log(PROJECT, "run-7-cp312", path)
    assert answer["url"] == f"/project/{PROJECT}/logs/run-7-cp312"
    assert answer["size"] == len(LOG)
    assert (server.data / f"farm/logs/{PROJECT}/run-7-cp312.log").read_text() == LOG
    for _ in range(10):
        page = request(server.url + answer["url"]).text
        assert '<strong id="failure-class" class="st st-failed">missing-header</strong>' in page
        assert "&lt;aarch64&gt;" in page and "<aarch64>" not in page
        assert "\nerror: command 'zig'" in html.unescape(page) and "[31m" not in page
        assert (
            '<mark id="log-key-line" class="key-line">src/demo.c:3:10: fatal error: &#39;rdkafka.h&#39;'
            in page
        )
    assert request(server.url + "/project/Farm_Demo/logs/run-7-cp312").status == 301
    assert request(server.url + f"/project/{PROJECT}/logs/nope").status == 404


def test_log_refusals(farm, tmp_path: Path) -> None:
    server, tokens, _wheel = farm
    before = files_under(server.data)
    text = "text/plain"
    up = tokens["upload"]
    cases = [
        (put(server, f"/api/farm/logs/{PROJECT}/a1", b"x", None, text), 401),
        (put(server, f"/api/farm/logs/{PROJECT}/a1", b"x", tokens["read"], text), 403),
        (put(server, f"/api/farm/logs/{PROJECT}/%2E%2E", b"x", up, text), 400),
        (put(server, f"/api/farm/logs/{PROJECT}/.hidden", b"x", up, text), 400),
        (
            put(server, f"/api/farm/logs/{PROJECT}/..%2F..%2Fauth%2Ftokens.json", b"x", up, text),
            404,
        ),
        (put(server, "/api/farm/logs/%2E%2E/a1", b"x", up, text), 400),
        (put(server, "/api/farm/logs/not%20valid!/a1", b"x", up, text), 400),
        (put(server, f"/api/farm/logs/{PROJECT}/a1", b"x", up, "application/json"), 415),
        (put(server, f"/api/farm/logs/{PROJECT}/a1", b"x" * (MAX_LOG_BYTES + 1), up, text), 413),
    ]
    for reply, code in cases:
        assert reply.status == code, (code, reply.text)
    assert "invalid log id '..'" in cases[2][0].text
    assert (
        "send the tail" not in cases[-1][0].text
        and "the limit is 8388608 bytes" in cases[-1][0].text
    )
    assert files_under(server.data) == before


def test_the_client_sends_the_tail_of_a_long_log(farm, tmp_path: Path) -> None:
    server, tokens, _wheel = farm
    line = b"0123456789abcdef" * 7 + b"\n"  # 113 bytes
    path = tmp_path / "long.log"
    path.write_bytes(line * ((MAX_LOG_BYTES // len(line)) + 1000) + KEY_LINE.encode() + b"\n")
    with FarmClient(server.url, tokens["upload"]) as client:
        assert client.put_log(PROJECT, "long", path)["size"] <= MAX_LOG_BYTES
    stored = (server.data / f"farm/logs/{PROJECT}/long.log").read_bytes()
    assert stored.startswith(b"[wheelfarm: the first ")
    assert stored.endswith(line + KEY_LINE.encode() + b"\n")
    assert stored.split(b"\n", 1)[1].startswith(line)  # whole lines only
    assert log_tail(b"short\n") == b"short\n"


# -- provenance ----------------------------------------------------------------------------------
def test_provenance_is_stored_served_and_linked(farm) -> None:
    server, tokens, wheel = farm
    with FarmClient(server.url, tokens["upload"]) as client:
        answer = client.put_provenance(wheel.name, provenance())
    url = f"/provenance/{wheel.name}.json"
    assert answer == {"wheel": wheel.name, "url": url}
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for _ in range(10):
        reply = request(server.url + url)
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "application/json"
        assert json.loads(reply.body) == {
            **provenance(),
            "wheel": wheel.name,
            "wheel_sha256": sha256,
        }
        assert f'href="{url}">provenance</a>' in request(server.url + f"/project/{PROJECT}/").text
    assert request(server.url + f"/provenance/{wheel.name}").status == 404
    assert request(server.url + "/provenance/farm_demo-9.0-py3-none-any.whl.json").status == 404


def test_provenance_refusals(farm) -> None:
    server, tokens, wheel = farm
    with FarmClient(server.url, tokens["upload"]) as client:
        client.put_provenance(wheel.name, provenance())
    before = files_under(server.data)
    up = tokens["upload"]
    good = json.dumps(provenance()).encode()
    path = f"/api/farm/provenance/{wheel.name}"
    missing = provenance()
    del missing["checker"]["ok"]
    cases = [
        (put(server, path, good, None), 401, "needs an upload token"),
        (put(server, path, good, tokens["read"]), 403, "may read but not write"),
        (
            put(server, "/api/farm/provenance/farm_demo-9.0-py3-none-any.whl", good, up),
            404,
            "no wheel farm_demo-9.0-py3-none-any.whl in this index",
        ),
        (put(server, "/api/farm/provenance/farm_demo-2.0.tar.gz", good, up), 400, "is not a wheel"),
        (put(server, "/api/farm/provenance/..%2Fauth%2Ftokens.json", good, up), 404, "not found"),
        (put(server, "/api/farm/provenance/..whl", good, up), 400, "invalid filename"),
        (put(server, path, b"{", up), 400, "not valid JSON"),
        (
            put(server, path, json.dumps(missing).encode(), up),
            400,
            "at .checker: 'ok' is a required property",
        ),
        (
            put(server, path, json.dumps(provenance(sdist_sha256="xyz")).encode(), up),
            400,
            "at .sdist_sha256",
        ),
        (
            put(server, path, json.dumps(provenance(build_time="soon")).encode(), up),
            400,
            "build_time: 'soon' is not an ISO 8601 time",
        ),
        (
            put(server, path, json.dumps(provenance(wheel_sha256="0" * 64)).encode(), up),
            409,
            "the record is for other bytes",
        ),
        (put(server, path, b" " * (MAX_PROVENANCE_BYTES + 1), up), 413, "too large"),
    ]
    for reply, code, message in cases:
        assert (reply.status, message in reply.text) == (code, True), (code, message, reply.text)
    assert files_under(server.data) == before
    with pytest.raises(FarmClientError) as info, FarmClient(server.url, up) as client:
        client.put_provenance("farm_demo-9.0-py3-none-any.whl", provenance())
    assert str(info.value) == (
        f"PUT {server.url}/api/farm/provenance/farm_demo-9.0-py3-none-any.whl: 404: "
        "no wheel farm_demo-9.0-py3-none-any.whl in this index: upload it before its provenance"
    )


def test_client_errors_name_the_url(tmp_path: Path) -> None:
    from support.index_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(FarmClientError, match=rf"^PUT {url}/api/farm/status: .*refused"):
        FarmClient(url, "wf_x").put_status({})
    with pytest.raises(FarmClientError, match="cannot send the status document as JSON"):
        FarmClient(url, "wf_x").put_status({"generated": object()})
    with pytest.raises(FarmClientError, match=r"cannot read the log .*nope\.log"):
        FarmClient(url, "wf_x").put_log(PROJECT, "a", tmp_path / "nope.log")


def test_a_private_index_needs_a_token_to_read_farm_pages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_token(data, "nightly")
    server = start_server(data, private=True, workers=1)
    try:
        wheel = make_dummy_wheel(tmp_path / "dist", PROJECT, "2.0", tag=f"cp311-cp311-{TARGET}")
        from index_http import upload, upload_form

        assert upload(server.url, token, *upload_form(wheel)).status == 200
        with FarmClient(server.url, token) as client:
            client.put_status(status_doc(wheel.name))
            client.put_provenance(wheel.name, provenance())
        for path in ("/status", f"/provenance/{wheel.name}.json", f"/project/{PROJECT}/"):
            assert request(server.url + path).status == 401
            assert request(server.url + path, token=token).status == 200
    finally:
        server.stop()


# -- in a browser --------------------------------------------------------------------------------
@pytest.mark.slow
def test_status_and_project_pages_in_a_browser(farm, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    server, tokens, wheel = farm
    log = tmp_path / "build.log"
    log.write_text(LOG)
    with FarmClient(server.url, tokens["upload"]) as client:
        client.put_status(status_doc(wheel.name, "2026-11-22T05:00:00Z"))
        client.put_log(PROJECT, "run-7-cp312", log)
        client.put_provenance(wheel.name, provenance())

    browser.get(server.url + "/status")
    counts = {
        li.get_attribute("data-status"): li.text
        for li in browser.find_elements(By.CSS_SELECTOR, "#counts li")
    }
    assert counts == {
        "published": "1 published",
        "upstream": "1 not needed (upstream has it)",
        "failed": "1 failed",
    }
    assert "finished 2026-11-22T05:00:00Z" in browser.find_element(By.ID, "last-run").text
    assert "'fast' is not one of <the backends>" in browser.find_element(By.ID, "run-errors").text
    failure = browser.find_element(By.CSS_SELECTOR, "#failures tr.failure")
    assert failure.find_element(By.CLASS_NAME, "failure-class").text == "missing-header"
    assert failure.find_element(By.CLASS_NAME, "key-line").text == KEY_LINE
    failed_cell = browser.find_element(By.CSS_SELECTOR, '#farm td[data-status="failed"]')
    assert failed_cell.value_of_css_property("background-color") == "rgba(255, 215, 213, 1)"
    browser.save_screenshot(str(tmp_path / "status.png"))

    failure.find_element(By.LINK_TEXT, "log").click()
    assert browser.current_url == f"{server.url}/project/{PROJECT}/logs/run-7-cp312"
    assert browser.find_element(By.ID, "failure-class").text == "missing-header"
    assert browser.find_element(By.ID, "key-line").text == KEY_LINE
    assert browser.find_element(By.CSS_SELECTOR, "#log pre").text == strip_ansi(LOG).rstrip("\n")
    assert browser.find_element(By.ID, "log-key-line").text == KEY_LINE
    browser.save_screenshot(str(tmp_path / "log.png"))

    browser.get(f"{server.url}/project/{PROJECT}/")
    recipe = browser.find_element(By.ID, "recipe").text
    assert recipe.startswith('[project]\nname = "farm-demo"')
    assert "# <b>not bold</b>" in recipe  # shown as text, not markup
    grid = {
        (
            td.get_attribute("data-python"),
            td.find_element(By.XPATH, "..").get_attribute("data-version"),
        ): td.get_attribute("data-status")
        for td in browser.find_elements(By.CSS_SELECTOR, "#builds td.cell[data-status]")
    }
    assert grid == {
        ("3.11", "2.0"): "published",
        ("3.12", "2.0"): "failed",
        ("3.11", "1.0"): "upstream",
    }
    browser.save_screenshot(str(tmp_path / "project.png"))
    links = browser.find_elements(By.CSS_SELECTOR, "table.files a.provenance-link")
    assert len(links) == 1
    links[0].click()
    assert browser.current_url == f"{server.url}/provenance/{wheel.name}.json"
    record = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    assert record["wheel"] == wheel.name
    assert record["sdist_url"] == provenance()["sdist_url"]
