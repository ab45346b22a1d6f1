"""The pages in a real headless Chromium at a laptop's 1280 px and a phone's 390 px: nothing overflows
the page sideways, long file names wrap or scroll inside their table, and a build log page opens with
the outcome, the failing step and the key error lines, its noise folded and long lines wrapped.

Screenshots of every page at both widths are kept in $WHEELFARM_TEST_ARTIFACTS (default:
test-artifacts/ in the clone) under pages/."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from support.index_server import create_token, start_server, twine_upload
from support.projects import make_dummy_wheel

from builder.farm.client import FarmClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROJECT = "confluent-kafka-extended-edition"
TARGET = "manylinux_2_17_aarch64"
KEY_LINE = (
    "confluent_kafka/src/confluent_kafka.c:1234:5: error: call to undeclared function "
    "'rd_kafka_conf_set_oauthbearer_token_refresh_cb_with_a_long_name'"
)
LONG_LINE = "  " + " ".join(
    f"-I/root/.cache/wheelfarm/prefix/{TARGET}/lib{i}/include" for i in range(12)
)
LOG = "\n".join(
    [
        f"wheelfarm build {PROJECT} 2.0.2 cp3.12 {TARGET} (cross)",
        "",
        "==== [    0.1s] build env (cached): /root/.cache/wheelfarm/buildenv/3.12-0123456789abcdef",
        "",
        "==== [    0.2s] build: python -m pip wheel --no-deps --no-build-isolation -v -w dist src",
        *(
            f"  VAR_{i}=/root/.cache/wheelfarm/toolchain/aarch64-linux-gnu.2.17/bin/tool{i}"
            for i in range(15)
        ),
        "  cwd=/root/.cache/wheelfarm/work/ck/backend",
        "Processing ./src",
        "  Running command Preparing metadata (pyproject.toml)",
        "  !!",
        "",
        "          ********************************************************************************",
        "          Please consider removing the following classifiers in favor of a SPDX license expression:",
        "          License :: OSI Approved :: Apache Software License",
        "          ********************************************************************************",
        "",
        "  !!",
        "  running bdist_wheel",
        "  running build",
        "  running build_py",
        *(
            f"  copying confluent_kafka/module{i}.py -> build/lib/confluent_kafka"
            for i in range(20)
        ),
        "  running build_ext",
        "  building 'confluent_kafka.cimpl' extension",
        "  cc -O2 -fno-sanitize=undefined" + LONG_LINE,
        KEY_LINE,
        "   1234 |     rd_kafka_conf_set_oauthbearer_token_refresh_cb_with_a_long_name(conf, cb);",
        "  1 error generated.",
        "  error: command '/root/.cache/wheelfarm/toolchain/aarch64-linux-gnu.2.17/bin/cc' failed with exit code 1",
        "",
        f"==== [   41.3s] result: failed at build: {KEY_LINE}",
    ]
)


def artifacts() -> Path:
    out = Path(os.environ.get("WHEELFARM_TEST_ARTIFACTS") or REPO / "test-artifacts") / "pages"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("layout")
    data = root / "data"
    token = create_token(data, "nightly")
    server = start_server(data, workers=1)
    tags = [
        f"cp311-cp311-{TARGET}.manylinux2014_aarch64",
        f"cp312-cp312-{TARGET}.manylinux2014_aarch64",
        "cp312-cp312-musllinux_1_2_aarch64",
    ]
    wheels = [make_dummy_wheel(root / "dist", PROJECT, "2.0.2", tag=t) for t in tags]
    up = twine_upload(server.url, token, *wheels)
    assert up.returncode == 0, up.stdout + up.stderr
    log = root / "build.log"
    log.write_text(LOG)
    cell = {"project": PROJECT, "version": "2.0.2", "target": TARGET}
    status = {
        "generated": "2026-12-02T12:00:00Z",
        "run": {"id": "run-1", "started": "2026-12-02T11:00:00Z", "finished": "2026-12-02T12:00:00Z",
                "counts": {"published": 1, "failed": 1}},
        "recipes": {},
        "cells": [
            {**cell, "python": "3.11", "status": "published", "wheel": wheels[0].name},
            {**cell, "python": "3.12", "status": "failed", "reason": "build: failed",
             "failure_class": "compiler-error", "key_line": KEY_LINE, "log": "run-1-cp312",
             "duration": 41.3, "when": "2026-12-02T11:30:00Z"},
        ],
    }  # fmt: skip
    with FarmClient(server.url, token) as client:
        client.put_status(status)
        client.put_log(PROJECT, "run-1-cp312", log)
    yield server
    server.stop()


PAGES = {
    "index": "/",
    "project": f"/project/{PROJECT}/",
    "status": "/status",
    "log": f"/project/{PROJECT}/logs/run-1-cp312",
}

OVERFLOW = """
const vw = document.documentElement.clientWidth;
const out = [];
for (const el of document.querySelectorAll('body, main, h1, h2, p, pre, ul, .table-scroll, details')) {
  const r = el.getBoundingClientRect();
  if (r.right > vw + 0.5) out.push(`${el.tagName}#${el.id}.${el.className}: right ${r.right} > ${vw}`);
}
return {inner: window.innerWidth, vw: vw, scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth, out: out};
"""


@pytest.mark.parametrize("width", [1280, 390])
def test_no_page_overflows_sideways(index, browser, width: int) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    try:
        for name, path in PAGES.items():
            browser.get(index.url + path)
            m = browser.execute_script(OVERFLOW)
            browser.save_screenshot(str(artifacts() / f"{name}-{width}.png"))
            assert m["inner"] == width, m  # clientWidth is less by a vertical scrollbar, if any
            assert m["scroll"] <= m["vw"] and m["body"] <= m["vw"], (name, m)
            assert m["out"] == [], (name, m)
            # Long lines wrap: no <pre> scrolls sideways.
            wide = browser.execute_script(
                "return [...document.querySelectorAll('pre')]"
                ".filter(p => p.offsetParent && p.scrollWidth > p.clientWidth + 1).map(p => p.id);"
            )
            assert wide == [], (name, wide)
        browser.get(index.url + PAGES["project"])
        files = browser.execute_script(
            "const t = document.querySelector('table.files');"
            "return [t.scrollWidth, t.parentElement.clientWidth, t.querySelector('a').offsetHeight];"
        )
        if width == 1280:
            # The file table fits the page at a laptop's width: long file names wrap.
            assert files[0] <= files[1], files
        else:
            # On a phone it scrolls inside its own box, the page does not (checked above).
            assert (
                browser.execute_script(
                    "return getComputedStyle(document.querySelector('.table-scroll')).overflowX"
                )
                == "auto"
            )
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_log_page_opens_with_what_happened(index, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get(index.url + PAGES["log"])
    summary = browser.find_element(By.ID, "log-summary")
    log = browser.find_element(By.ID, "log")
    assert summary.location["y"] < log.location["y"]
    assert browser.find_element(By.ID, "cell-status").text == "failed"
    assert browser.find_element(By.ID, "failed-step").text == "build"
    assert browser.find_element(By.ID, "failure-class").text == "compiler-error"
    errors = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#error-lines li")]
    assert errors[0] == KEY_LINE and len(errors) <= 6
    # Steps are collapsible; the failing step is open, the cached build env closed.
    steps = {
        d.get_attribute("data-step"): d.get_attribute("open")
        for d in browser.find_elements(By.CSS_SELECTOR, "details.step")
    }
    assert steps["build"] == "true" and steps["build env (cached)"] is None
    # The environment dump and the setuptools noise are folded away, the key line is not.
    folds = browser.find_elements(By.CSS_SELECTOR, "details.step[data-step=build] details.fold")
    assert {f.get_attribute("class") for f in folds} >= {"fold fold-env", "fold fold-noise"}
    assert all(f.get_attribute("open") is None for f in folds)
    key = browser.find_element(By.ID, "log-key-line")
    assert key.text == KEY_LINE and key.is_displayed()
    assert not browser.find_element(By.XPATH, "//*[contains(text(), 'VAR_3=')]").is_displayed()
    assert not browser.find_element(By.XPATH, "//*[contains(text(), 'SPDX')]").is_displayed()
    # The long compiler line is there in full, wrapped.
    assert LONG_LINE.strip() in browser.find_element(By.CSS_SELECTOR, "details.step[open]").text
    browser.find_element(By.ID, "raw-log").click()
    assert browser.current_url == index.url + PAGES["log"] + "/raw"
    raw = httpx.get(index.url + PAGES["log"] + "/raw")
    assert raw.status_code == 200 and raw.text == LOG
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(index.url + f"/project/{PROJECT}/logs/nope/raw").status_code == 404
