"""`wheelfarm nightly --serve` (the README's `make farm`): it starts the embedded index, runs, keeps
serving, and SIGTERM stops the index it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from support.index_server import free_port
from support.projects import make_dummy_wheel
from support.static_index import FileSpec, StaticIndexServer, write_static_index


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_nightly_serve_runs_then_serves_until_sigterm(tmp_path: Path) -> None:
    # Upstream already has a wheel for every cell: the run plans, builds nothing, and serves.
    wheel = make_dummy_wheel(tmp_path / "w", "ns-demo", "1.0", tag="py3-none-any")
    write_static_index(tmp_path / "up", {"ns-demo": [FileSpec(wheel.name, wheel.read_bytes())]})
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "ns-demo.toml").write_text(
        '[project]\nname = "ns-demo"\npythons = ["3.11"]\ntargets = ["manylinux_2_17_aarch64"]\n'
        '[test]\nimports = ["ns_demo"]\n'
    )
    port = free_port()
    simple = f"http://127.0.0.1:{port}/simple/"
    env = {**os.environ, "WHEELFARM_DATA": str(tmp_path / "data")}
    report_file = tmp_path / "report.json"
    with StaticIndexServer(tmp_path / "up") as upstream, report_file.open("w") as out:
        proc = subprocess.Popen(
            ["wheelfarm", "nightly", "--serve", "--port", str(port), "--json",
             "--upstream", upstream.url, str(recipes)],
            env=env, stdout=out, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            # The report is printed once the run is done; the index keeps serving after it.
            while not (report_file.stat().st_size and _answers(simple)):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no report, or the index never answered"
                time.sleep(0.5)
            time.sleep(1)
            assert proc.poll() is None and _answers(simple)  # still serving after the run
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    report = json.loads(report_file.read_text())
    assert [c["status"] for c in report["cells"]] == ["upstream"], report
    assert proc.returncode in (0, 128 + signal.SIGTERM), err
    assert not _answers(simple), "the index outlived the nightly"
