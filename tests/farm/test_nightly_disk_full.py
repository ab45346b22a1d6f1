"""A real nightly publishing to the real index whose storage disk is full, then freed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from support.index_server import create_token, start_server
from support.projects import make_sdist
from support.static_index import FileSpec, StaticIndexServer, write_static_index
from support.tiny_disk import TinyDisk, tiny_disk_unavailable

from builder.common.fetch import sha256_file
from builder.farm.ledger import Ledger, Outcome

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(tiny_disk_unavailable() is not None, reason=str(tiny_disk_unavailable())),
]

RECIPE = """[project]
name = "nf-full"
pythons = ["3.11"]
targets = ["manylinux_2_17_aarch64"]
[test]
imports = ["nf_full"]
call = "import nf_full as m; assert m.triangle(10) == 55"
"""


def test_a_full_index_disk_keeps_the_wheel_and_a_later_run_publishes_it(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdists", "nf-full", "1.0", c_extension=True)
    write_static_index(
        tmp_path / "upstream", {"nf-full": [FileSpec(sdist.name, sdist.read_bytes())]}
    )
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "nf-full.toml"
    recipe.write_text(RECIPE)
    ledger_path = tmp_path / "ledger.sqlite3"

    with (
        TinyDisk(tmp_path / "index", size_kb=1024) as disk,
        StaticIndexServer(tmp_path / "upstream") as upstream,
    ):
        token = create_token(disk.mountpoint, "nightly", wrap=disk.wrap)
        server = start_server(disk.mountpoint, workers=1, wrap=disk.wrap)
        try:

            def nightly() -> tuple[int, dict, dict]:
                env = {
                    **os.environ,
                    "WHEELFARM_DATA": str(tmp_path / "data"),
                    "WHEELFARM_INDEX_TOKEN": token,
                }
                args = [
                    "wheelfarm", "nightly", "--json", "--jobs", "1", "--index", server.url,
                    "--upstream", upstream.url, "--ledger", str(ledger_path), str(recipe),
                ]  # fmt: skip
                done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
                assert done.returncode in (0, 1), done.stderr
                assert done.stdout, done.stderr
                report = json.loads(done.stdout)
                (cell,) = [c for c in report["cells"] if c["project"] == "nf-full"]
                return done.returncode, report, cell

            ballast = disk.fill(leave_kb=0)
            code, report, cell = nightly()
            # Built and tested, not published: the reason carries the index's own answer, and the
            # run says something went wrong.
            assert code == 1
            assert cell["status"] == "tested", cell
            assert cell["reason"].startswith("not published: upload failed:"), cell
            assert "507" in cell["reason"] and "storage is full" in cell["reason"], cell
            # The farm pages (log, status) could not be stored either: warnings, not a lost build.
            assert report["warnings"], report
            assert all("507" in w and "storage is full" in w for w in report["warnings"])
            wheels = list((tmp_path / "data" / "wheelhouse").glob("nf_full-1.0-*.whl"))
            assert len(wheels) == 1, wheels
            kept = wheels[0]
            with Ledger.open(ledger_path) as ledger:
                (attempt,) = ledger.history("nf-full")
            assert attempt.outcome is Outcome.TESTED  # finished, not published
            assert [w.filename for w in attempt.wheels] == [kept.name]
            assert httpx.get(server.url + "/simple/nf-full/").status_code == 404
            # No temporary file left (the lock files of Storage.locked are meant to stay).
            leftovers = [p for p in disk.view.rglob("*") if p.name.startswith(".")]
            assert not [p for p in leftovers if ".locks" not in p.relative_to(disk.view).parts]

            # Space freed: the next run publishes the kept wheel without building it again.
            ballast.unlink()
            code, report, cell = nightly()
            assert code == 0 and report["warnings"] == [], report
            assert cell["status"] == "tested" and cell["published"], cell
            assert cell["wheel"] == kept.name, cell
            with Ledger.open(ledger_path) as ledger:
                (attempt,) = ledger.history("nf-full")  # no second attempt: not rebuilt
            assert attempt.outcome is Outcome.PUBLISHED
            page = httpx.get(
                server.url + "/simple/nf-full/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            ).json()
            assert [(f["filename"], f["hashes"]["sha256"]) for f in page["files"]] == [
                (kept.name, sha256_file(kept))
            ]
        finally:
            server.stop()
