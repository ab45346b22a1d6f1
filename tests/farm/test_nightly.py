"""A real nightly over fixture recipes, a local upstream index and the real index server."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from support.index_server import create_token, start_server
from support.projects import make_sdist
from support.static_index import FileSpec, StaticIndexServer, write_static_index

from builder.common.upstream import IndexClient
from builder.farm.ledger import Ledger, Outcome
from builder.farm.sandbox import namespaces_available

pytestmark = pytest.mark.slow

# What an sdist's own code could try during a build: read secrets, write into the index's storage.
PROBE = """
import os, pathlib
if "NF_PROBE_OUT" in os.environ:  # only in the farm's build, not when the test makes the sdist
    lines = ["token-seen=%s" % any("TOKEN" in k for k in os.environ)]
    try:
        pathlib.Path(os.environ["NF_INDEX_STORAGE"], "planted.txt").write_text("x")
        lines.append("index-write=ok")
    except OSError:
        lines.append("index-write=refused")
    pathlib.Path(os.environ["NF_PROBE_OUT"]).write_text(" ".join(lines))
"""
SLOW = """
import os, time
if os.path.exists(os.environ.get("NF_SLOW_MARKER", "/nonexistent")):
    time.sleep(300)
"""


def recipe(name: str, call: str) -> str:
    pkg = name.replace("-", "_")
    return (
        f'[project]\nname = "{name}"\npythons = ["3.11"]\ntargets = ["manylinux_2_17_aarch64"]\n'
        f'[test]\nimports = ["{pkg}"]\ncall = "{call}"\n'
    )


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("nightly")
    sdists = tmp / "sdists"
    specs = {
        "nf-alpha": make_sdist(sdists, "nf-alpha", "1.0", c_extension=True, setup_prelude=PROBE),
        "nf-broken": make_sdist(
            sdists, "nf-broken", "1.0", c_extension=True, extra_c="\nthis is not C;\n"
        ),
        "nf-slow": make_sdist(sdists, "nf-slow", "1.0", c_extension=True, setup_prelude=SLOW),
        "nf-py312": make_sdist(sdists, "nf-py312", "1.0", c_extension=True),
    }
    write_static_index(
        tmp / "upstream",
        {name: [FileSpec(p.name, p.read_bytes())] for name, p in specs.items()},
    )
    recipes = tmp / "recipes"
    recipes.mkdir()
    for name in specs:
        call = f"import {name.replace('-', '_')} as m; assert m.triangle(10) == 55"
        text = recipe(name, call)
        if name == "nf-py312":  # Debian has no arm64 CPython 3.12: nothing here can run the wheel
            text = text.replace('pythons = ["3.11"]', 'pythons = ["3.12"]')
        (recipes / f"{name}.toml").write_text(text)
    (recipes / "nf-bad.toml").write_text('[project]\nname = "nf-bad"\nflavour = "unknown key"\n')
    data = tmp / "index"
    token = create_token(data, "nightly")
    server = start_server(data, workers=1)
    with StaticIndexServer(tmp / "upstream") as upstream:
        yield {"tmp": tmp, "recipes": recipes, "index": server, "token": token, "up": upstream}
    server.stop()


def nightly(
    farm, *recipes: str, background: bool = False, as_json: bool = True, extra: tuple[str, ...] = ()
):
    tmp = farm["tmp"]
    env = {
        **os.environ,
        "WHEELFARM_DATA": str(tmp / "data"),
        "WHEELFARM_INDEX_TOKEN": farm["token"],
        "NF_INDEX_STORAGE": str(farm["index"].data),
        "NF_PROBE_OUT": str(tmp / "probe.txt"),
        "NF_SLOW_MARKER": str(tmp / "slow.marker"),
        "COLUMNS": "60",  # a narrow pipe: rich would cut table cells to fit 60 columns
    }
    args = [
        "wheelfarm", "nightly", *(["--json"] if as_json else []), "--jobs", "2",
        "--index", farm["index"].url, "--upstream", farm["up"].url,
        "--ledger", str(tmp / "ledger.sqlite3"), "--protect", str(farm["index"].data), *extra,
        *(str(farm["recipes"] / f"{r}.toml") for r in recipes),
    ]  # fmt: skip
    if background:
        return subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stderr
    farm["stderr"], farm["stdout"] = done.stderr, done.stdout
    if not as_json:
        return done.returncode, done.stdout, done.stderr
    report = json.loads(done.stdout)
    return done.returncode, report, {c["project"]: c for c in report["cells"]}


def ledger_rows(farm, project: str):
    with Ledger.open(farm["tmp"] / "ledger.sqlite3") as ledger:
        return ledger.history(project)


def own_files(farm, project: str) -> list[str]:
    with IndexClient(farm["index"].url + "/simple/", cache=False) as client:
        return sorted(f.filename for f in client.project(project).files)


def test_nightly_builds_publishes_then_does_nothing_and_rebuilds_a_changed_recipe(farm) -> None:
    code, report, cells = nightly(farm, "nf-alpha", "nf-broken", "nf-bad")
    assert code == 1  # a failed job and a bad recipe; the others still ran
    assert cells["nf-alpha"]["status"] == "tested" and cells["nf-alpha"]["published"], cells
    (wheel,) = own_files(farm, "nf-alpha")
    assert wheel.startswith("nf_alpha-1.0-cp311-cp311-") and "manylinux_2_17_aarch64" in wheel
    broken = cells["nf-broken"]
    assert broken["status"] == "failed" and broken["failure_class"] == "compiler-error"
    assert "error" in broken["key_line"] and Path(broken["log"]).is_file()
    assert any("nf-bad.toml" in e and "flavour" in e for e in report["errors"])

    # Not a terminal: one plain line per step change as it happens, nothing redrawn, and twine's
    # output in the publish log rather than between our lines.
    err = farm["stderr"]
    alpha = "nf-alpha 1.0 cp3.11 manylinux_2_17_aarch64: "
    for step in ("starting", "building nf-alpha 1.0 for cp3.11", "repairing", "testing"):
        assert alpha + step in err, err
    assert re.search(re.escape(alpha) + r"tested, published in \d+ s \(\d+ done, ", err), err
    assert "nf-broken 1.0 cp3.11 manylinux_2_17_aarch64: failed in" in err
    assert "\r" not in err and "\x1b[" not in err and "Uploading" not in err
    twine_log = (farm["tmp"] / "data" / "logs" / "publish.log").read_text()
    assert "Uploading nf_alpha-1.0-cp311" in twine_log

    # The sdist's own code ran without the token and could not write into the index storage.
    probe = (farm["tmp"] / "probe.txt").read_text()
    assert "token-seen=False" in probe
    if namespaces_available():
        assert "index-write=refused" in probe
        assert not (farm["index"].data / "planted.txt").exists()

    # The index's farm pages show it: counts, the failure's key line and log, the provenance.
    assert report["warnings"] == []
    status = html.unescape(httpx.get(farm["index"].url + "/status").text)
    assert "nf-broken" in status and broken["key_line"] in status
    log_page = httpx.get(f"{farm['index'].url}/project/nf-broken/logs/{Path(broken['log']).name}")
    assert log_page.status_code == 200 and "compiler-error" in log_page.text
    provenance = httpx.get(f"{farm['index'].url}/provenance/{wheel}.json").json()
    assert provenance["sdist_url"].endswith("nf_alpha-1.0.tar.gz")
    assert provenance["checker"]["ok"] is True and provenance["toolchain"]["zig"]
    test = provenance["test"]  # what "tested" rests on
    assert test["outcome"] == "tested" and "python3.11" in test["interpreter"], test
    assert "qemu-aarch64" in test["interpreter"] and "import nf_alpha" in test["command"]
    assert len(test["output_sha256"]) == 64
    project_page = httpx.get(farm["index"].url + "/project/nf-alpha/").text
    assert f"/provenance/{wheel}.json" in project_page

    # Second run: nothing to do; the deterministic failure is not retried. It brings the static
    # export up to date after publishing (here: the first export, holding the published wheel).
    site = farm["tmp"] / "site"
    export_args = ("--export", str(site), "--export-from", str(farm["index"].data))
    code, report, cells = nightly(farm, "nf-alpha", "nf-broken", extra=export_args)
    assert "simple/nf-alpha/index.json" in report["export"]["pages_written"]
    assert (site / "files" / "nf-alpha" / wheel).is_file()
    assert (site / "files" / "nf-alpha" / f"{wheel}.metadata").is_file()
    assert cells["nf-alpha"]["status"] == "ours"
    assert cells["nf-broken"]["status"] == "failed"
    assert "not retried" in cells["nf-broken"]["reason"]
    assert report["warnings"] == []  # every run's status document is accepted by the index

    # The summary written to a pipe: plain rows as wide as their content, nothing cut.
    code, out, err = nightly(farm, "nf-alpha", "nf-broken", as_json=False)
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("nf-")}
    assert rows["nf-alpha"].startswith(
        "nf-alpha   1.0      3.11    manylinux_2_17_aarch64  in this index"
    )
    assert "manylinux_2_17_aarch64  failed" in rows["nf-broken"] and "\x1b[" not in out
    assert len(ledger_rows(farm, "nf-alpha")) == 1 and len(ledger_rows(farm, "nf-broken")) == 1

    # A changed recipe rebuilds only itself; the new wheel gets the next build tag.
    path = farm["recipes"] / "nf-alpha.toml"
    path.write_text(path.read_text().replace("== 55", "== 55 and m.triangle(4) == 10"))
    code, report, cells = nightly(farm, "nf-alpha", "nf-broken")
    assert cells["nf-alpha"]["status"] == "tested" and cells["nf-alpha"]["published"], cells
    files = own_files(farm, "nf-alpha")
    assert len(files) == 2 and any(f.startswith("nf_alpha-1.0-1-cp311") for f in files)
    assert report["warnings"] == []
    assert len(ledger_rows(farm, "nf-broken")) == 1


def test_a_killed_nightly_resumes_without_redoing_or_duplicating(farm) -> None:
    marker = farm["tmp"] / "slow.marker"
    marker.touch()
    proc = nightly(farm, "nf-slow", "nf-alpha", background=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (farm["tmp"] / "ledger.sqlite3").exists() and ledger_rows(farm, "nf-slow"):
            break
        assert proc.poll() is None, "the nightly ended before it was killed"
        time.sleep(0.5)
    time.sleep(2)  # inside the build now
    # /status fills up during the run: the cell being built shows as running, the run unfinished.
    live = httpx.get(farm["index"].url + "/api/farm/status").json()
    slow = [c for c in live["cells"] if c["project"] == "nf-slow"]
    assert [c["status"] for c in slow] == ["running"] and live["run"]["finished"] is None, live
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (row,) = ledger_rows(farm, "nf-slow")
    assert row.outcome is Outcome.RUNNING
    marker.unlink()
    code, report, cells = nightly(farm, "nf-slow", "nf-alpha")
    assert code == 0, report
    assert cells["nf-slow"]["status"] == "tested" and cells["nf-slow"]["published"]
    assert cells["nf-alpha"]["status"] == "ours"
    (row,) = ledger_rows(farm, "nf-slow")  # the interrupted attempt was resumed, not duplicated
    assert row.outcome is Outcome.PUBLISHED and row.run_id == report["run_id"]


def test_a_wheel_nothing_could_run_is_checked_not_run_everywhere(farm, tmp_path: Path) -> None:
    """Built and checked for CPython 3.12, which has no arm64 interpreter here: published, but the
    report, the ledger, the status page (in a real browser) and the provenance say "checked, not
    run", never plain success. With publish-untested = false the recipe keeps it off the index."""
    code, report, cells = nightly(farm, "nf-py312")
    cell = cells["nf-py312"]
    assert code == 0, report
    assert cell["status"] == "checked-not-run" and cell["published"], cell
    (wheel,) = own_files(farm, "nf-py312")
    assert "-cp312-" in wheel
    (row,) = ledger_rows(farm, "nf-py312")
    assert row.outcome is Outcome.PUBLISHED  # the attempt reached the index ...
    provenance = httpx.get(f"{farm['index'].url}/provenance/{wheel}.json").json()
    assert provenance["test"]["outcome"] == "checked-not-run"  # ... as an unproven wheel
    assert "no arm64 interpreter for Python 3.12" in provenance["test"]["reason"]
    assert not provenance["test"]["output_sha256"]

    from support.browser import chromium

    with chromium(tmp_path / "profile") as browser:
        browser.get(farm["index"].url + "/status")
        shown = browser.find_element(
            "css selector", 'td[data-status="checked-not-run"][data-python="3.12"]'
        )
        assert shown.text.splitlines()[0] == "checked, not run, published"  # then a log link
        colour = shown.value_of_css_property("background-color")
        others = browser.execute_script(
            """return ["tested", "built"].map(s => {
                 const e = document.createElement("td"); e.className = "cell st st-" + s;
                 document.body.appendChild(e); return getComputedStyle(e).backgroundColor; });"""
        )
        assert colour not in others and len(set(others)) == 2, (colour, others)

    # The same recipe, told not to publish what it could not run, keeps the next build off the index.
    path = farm["recipes"] / "nf-py312.toml"
    path.write_text(path.read_text() + "publish-untested = false\n")
    code, report, cells = nightly(farm, "nf-py312")
    cell = cells["nf-py312"]
    assert cell["status"] == "checked-not-run" and not cell["published"], cell
    assert cell["reason"].startswith("kept, not published: ") and code == 0
    assert own_files(farm, "nf-py312") == [wheel]  # only the earlier, marked one


def test_serve_starts_the_index_first_and_says_so_at_once(tmp_path: Path) -> None:
    """`nightly --serve` (what `make farm` runs): the index answers and the first line says where
    before the run plans anything; the summary follows; the index keeps serving until SIGTERM."""
    from support.index_server import free_port

    write_static_index(
        tmp_path / "up", {"nf-pure": [FileSpec("nf_pure-1.0-py3-none-any.whl", b"x")]}
    )
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "nf-pure.toml").write_text(recipe("nf-pure", "import nf_pure"))
    port = free_port()
    env = {**os.environ, "WHEELFARM_DATA": str(tmp_path / "data"), "COLUMNS": "60"}
    with StaticIndexServer(tmp_path / "up") as up:
        proc = subprocess.Popen(
            ["wheelfarm", "nightly", "--serve", "--port", str(port), "--upstream", up.url,
             str(recipes)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            assert proc.stderr is not None and proc.stdout is not None
            first = proc.stderr.readline()
            url = f"http://127.0.0.1:{port}/"
            assert first.startswith(f"serving {url} (the run's progress: {url}status"), first
            assert httpx.get(url + "simple/").status_code == 200  # answering already
            rest = []
            for line in proc.stderr:
                rest.append(line)
                if line.startswith("still serving"):
                    break
            assert any(re.match(r"\d\d:\d\d:\d\d planning 1 recipes", ln) for ln in rest), rest
            assert rest[-1] == f"still serving {url} (Ctrl-C stops)\n"
            assert httpx.get(url + "status").status_code == 200
            assert proc.poll() is None  # still serving after the run
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=60)
        summary = proc.stdout.read()
        row = "nf-pure  1.0      3.11    manylinux_2_17_aarch64  not needed (upstream has it)"
        assert row in summary, summary
        assert code == 128 + signal.SIGTERM
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "simple/", timeout=2)  # the index went with it
