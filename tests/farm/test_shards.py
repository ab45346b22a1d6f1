"""The nightly's fan-out within GitHub Actions' documented limits: a simulated plan of 2,000 jobs over
500 recipes (a first run) goes through the real `wheelfarm fanout` command, and every generated matrix,
job output and shard is checked against the limits the nightly workflow runs under."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from builder.farm.shards import HOSTED_JOB_MAX_MINUTES, MATRIX_MAX_JOBS, OUTPUT_MAX_BYTES

ROOT = Path(__file__).parents[2]
PYTHONS = ("3.11", "3.12")
TARGETS = ("manylinux_2_17_aarch64", "macosx_11_0_arm64")

RECIPE = """\
[project]
name = "{name}"
pythons = ["3.11", "3.12"]
targets = ["manylinux_2_17_aarch64", "macosx_11_0_arm64"]

[build]
backend = "cibuildwheel"
{native}
[test]
imports = ["{module}"]
"""

NATIVE = """
[[native]]
name = "libz{i}"
source = "debian:zlib"
build-system = "autotools"
"""


def simulated_plan(folder: Path, recipes: int = 500) -> Path:
    """500 recipes (every tenth with a native library), 4 jobs each: 2 Pythons x 2 targets."""
    (folder / "recipes").mkdir()
    jobs = []
    for i in range(recipes):
        name = f"proj{i:03d}"
        path = folder / "recipes" / f"{name}.toml"
        native = NATIVE.format(i=i) if i % 10 == 0 else ""
        path.write_text(RECIPE.format(name=name, module=name, native=native))
        sha = hashlib.sha256(name.encode()).hexdigest()
        for py in PYTHONS:
            for target in TARGETS:
                jobs.append(
                    {
                        "project": name,
                        "version": "1.0",
                        "sdist_url": f"https://files.example.org/{name}-1.0.tar.gz",
                        "sdist_sha256": sha,
                        "sdist_filename": f"{name}-1.0.tar.gz",
                        "python": py,
                        "target": target,
                        "reason": "only an sdist upstream",
                        "recipe_path": str(path),
                    }
                )
    plan = folder / "plan.json"
    plan.write_text(json.dumps({"include": jobs}))
    return plan


def wheelfarm(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        ["wheelfarm", *args], cwd=cwd, capture_output=True, text=True, env=os.environ | (env or {})
    )


def fanout(tmp: Path, plan: Path, *extra: str) -> tuple[dict, dict, str]:
    output = tmp / "github_output"
    output.unlink(missing_ok=True)
    proc = wheelfarm(
        "fanout", "--plan", str(plan), "--out", str(tmp / "shards.json"), *extra,
        cwd=tmp, env={"GITHUB_OUTPUT": str(output)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = output.read_text()
    lines = dict(line.split("=", 1) for line in text.splitlines())
    return json.loads((tmp / "shards.json").read_text()), lines, text


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("sim")
    plan = simulated_plan(tmp)
    # The unsharded matrix is what the nightly used to feed GitHub: far beyond the 256-job limit.
    proc = wheelfarm("cibw-options", "--plan", str(plan), "--matrix", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["include"]
    assert len(runs) == 1000 > MATRIX_MAX_JOBS
    return tmp, plan, runs


def check_limits(doc: dict, lines: dict, text: str, runs: list[dict], shard_minutes: float):
    # The job output: under 1 MB as GitHub measures it (UTF-16), the matrix within 256 jobs.
    assert len(text.encode("utf-16-le")) < OUTPUT_MAX_BYTES
    matrix = json.loads(lines["matrix"])
    assert int(lines["count"]) == len(matrix["include"]) == len(doc["shards"])
    assert len(matrix["include"]) <= MATRIX_MAX_JOBS
    assert all(isinstance(v, str) for e in matrix["include"] for v in e.values())
    # Every run is built by exactly one shard or deferred (with a reason), none twice, none lost.
    scheduled = [r for s in doc["shards"] for r in s["runs"]]
    deferred = [d["run"] for d in doc["deferred"]]
    assert sorted(scheduled + deferred) == sorted(r["id"] for r in runs)
    assert all(d["why"] for d in doc["deferred"])
    by_id = {r["id"]: r for r in runs}
    for shard in doc["shards"]:
        # One runner per shard (a Linux run never lands on a Mac), within the job time limit.
        assert {by_id[r]["runner"] for r in shard["runs"]} == {shard["runner"]}
        assert shard["minutes"] <= shard_minutes or len(shard["runs"]) == 1
        assert shard["minutes"] <= HOSTED_JOB_MAX_MINUTES
    summary = doc["summary"]
    assert summary["jobs"] + summary["deferred_jobs"] == 2000
    return summary


def test_2000_jobs_over_500_recipes_fit_in_one_matrix(sim):
    tmp, plan, runs = sim
    doc, lines, text = fanout(tmp, plan, "--shard-minutes", "300")
    summary = check_limits(doc, lines, text, runs, 300)
    assert summary["deferred_jobs"] == 0 and summary["jobs"] == 2000
    # 1000 runs of 2 wheels: 4 + 2 x 6 minutes each, plus 8 per native library (50 recipes x 2 runs).
    assert summary["runner_minutes"] == 1000 * 16 + 100 * 8
    assert {s["runner"] for s in doc["shards"]} == {"ubuntu-24.04-arm", "macos-14"}
    # Shards are packed, not one run each.
    assert len(doc["shards"]) <= 2 * (summary["runner_minutes"] / 2 // 300 + 2)


def test_a_budget_defers_what_does_not_fit_tonight(sim):
    tmp, plan, runs = sim
    doc, lines, text = fanout(tmp, plan, "--budget-minutes", "6000")
    summary = check_limits(doc, lines, text, runs, 300)
    assert 0 < summary["runner_minutes"] <= 6000
    assert summary["deferred_jobs"] > 0
    assert all("budget" in d["why"] for d in doc["deferred"])
    # The same plan defers the same runs (admitted in a stable order): tomorrow continues.
    again, _, _ = fanout(tmp, plan, "--budget-minutes", "6000")
    assert again["deferred"] == doc["deferred"]


def test_short_shards_fill_256_jobs_and_defer_the_rest(sim):
    tmp, plan, runs = sim
    doc, lines, text = fanout(tmp, plan, "--shard-minutes", "20")
    summary = check_limits(doc, lines, text, runs, 20)
    assert len(doc["shards"]) == MATRIX_MAX_JOBS
    assert summary["deferred_runs"] == 1000 - summary["runs"] > 0
    assert any("matrix jobs are full" in d["why"] for d in doc["deferred"])


def test_impossible_limits_are_refused(sim):
    tmp, plan, _ = sim
    proc = wheelfarm(
        "fanout", "--plan", str(plan), "--out", "x.json", "--max-shards", "300", cwd=tmp
    )
    assert proc.returncode == 2 and "--max-shards" in proc.stderr
    assert not (tmp / "x.json").exists()


def test_the_nightly_runs_fanout_within_the_limits():
    doc = yaml.safe_load((ROOT / ".github/workflows/nightly.yml").read_text())
    plan_steps = "\n".join(s.get("run", "") for s in doc["jobs"]["plan"]["steps"])
    assert "wheelfarm fanout --plan plan.json --out shards.json" in plan_steps
    shard_minutes = float(plan_steps.split("--shard-minutes", 1)[1].split()[0])
    build = doc["jobs"]["build"]
    assert shard_minutes < build["timeout-minutes"] <= HOSTED_JOB_MAX_MINUTES
    # A concurrency cap: one night holds at most this many runners at once.
    assert 1 <= build["strategy"]["max-parallel"] <= 20
    assert build["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    steps = "\n".join(s.get("run", "") for s in build["steps"])
    assert 'wheelfarm cibw-build --plan plan.json --shards shards.json --shard "$SHARD"' in steps


def test_a_shard_builds_each_run_and_reports_every_failure(tmp_path: Path):
    """On this x86_64 machine cibuildwheel cannot run: every run of the shard is tried after its
    sdist is fetched and verified, each failure is named, and the exit status is 1."""
    plan = simulated_plan(tmp_path, recipes=3)
    doc = json.loads(plan.read_text())
    for job in doc["include"]:  # local sdists, so the fetch and its sha256 check really run
        sdist = tmp_path / job["sdist_filename"]
        sdist.write_bytes(job["project"].encode())
        job["sdist_url"] = str(sdist)
    (tmp_path / "proj002-1.0.tar.gz").write_bytes(b"tampered")  # not the planned sha256
    plan.write_text(json.dumps(doc))
    shards, _, _ = fanout(tmp_path, plan)
    linux = next(s for s in shards["shards"] if s["runner"] == "ubuntu-24.04-arm")
    proc = wheelfarm(
        "cibw-build", "--plan", str(plan), "--shards", str(tmp_path / "shards.json"),
        "--shard", linux["shard"], "--log", str(tmp_path / "logs"),
        cwd=tmp_path, env={"WHEELFARM_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert proc.returncode == 1
    assert len(linux["runs"]) == 3
    for rid in linux["runs"]:
        if rid.startswith("proj002"):
            assert f"error: {rid}: " in proc.stderr and "sha256" in proc.stderr
        else:
            assert (
                f"error: {rid}: {rid}: the cibuildwheel backend runs on a native Linux"
                in proc.stderr
            )
    assert f"{len(linux['runs'])} of {len(linux['runs'])} run(s) failed" in proc.stderr
    proc = wheelfarm(
        "cibw-build", "--plan", str(plan), "--shards", str(tmp_path / "shards.json"),
        "--shard", "s999", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1 and "no shard 's999'" in proc.stderr
