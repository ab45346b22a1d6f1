"""`wheelfarm build` and `wheelfarm doctor` end to end, as a person or CI runs them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from support.projects import make_sdist

pytestmark = pytest.mark.slow

RECIPE = """
[project]
name = "wf-cli"
pythons = ["3.11", "3.13"]
targets = ["manylinux_2_17_aarch64"]

[build]
backend = "cross"
before-build = "test -f {project}/setup.py && echo hook-ran-$((6 * 7))"

[test]
imports = ["wf_cli"]
call = "import wf_cli; assert wf_cli.triangle(100) == 5050 and wf_cli.machine() == 'aarch64'"
"""


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["wheelfarm", *args], capture_output=True, text=True, env=env)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "WHEELFARM_DATA": str(tmp_path / "data")}


def test_build_recipe_with_a_local_sdist_for_two_pythons(tmp_path: Path, env) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-cli", "2.0.0", c_extension=True)
    recipe = tmp_path / "wf-cli.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "wheels"
    proc = run(
        "build", str(recipe), "--sdist", str(sdist), "--version", "2.0.0",
        "--out", str(out), "--json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {r["python"]: r for r in json.loads(proc.stdout)["results"]}
    assert set(results) == {"3.11", "3.13"}
    for py, r in results.items():
        # 3.11 runs under qemu in Debian bookworm's arm64 CPython, 3.13 in trixie's.
        assert r["status"] == "tested", r
        tag = f"cp3{py[2:]}-cp3{py[2:]}-manylinux_2_17_aarch64"
        assert tag in r["tags"] and Path(r["wheel"]).parent == out.resolve()
        assert r["sdist_sha256"] == hashlib.sha256(sdist.read_bytes()).hexdigest()
        assert "hook-ran-42" in Path(r["log"]).read_text()  # the hook ran, in the sdist's folder
    assert len(list(out.glob("*.whl"))) == 2


def test_build_plan_runs_every_job_and_reports_the_failure(tmp_path: Path, env) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-cli", "2.0.0", c_extension=True)
    recipe = tmp_path / "wf-cli.toml"
    recipe.write_text(RECIPE)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    job = {
        "project": "wf-cli",
        "version": "2.0.0",
        "sdist_url": sdist.as_uri(),
        "sdist_sha256": "0" * 64,  # the first job's hash is wrong
        "sdist_filename": sdist.name,
        "python": "3.11",
        "target": "manylinux_2_17_aarch64",
        "reason": "no aarch64 wheel upstream",
        "recipe_path": str(recipe),
    }
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"include": [job, {**job, "sdist_sha256": digest}]}))
    proc = run("build", "--plan", str(plan), "--out", str(tmp_path / "w"), "--json", env=env)
    assert proc.returncode == 1, proc.stderr
    bad, good = json.loads(proc.stdout)["results"]
    assert (
        bad["status"] == "failed" and bad["step"] == "fetch" and "sha256 mismatch" in bad["error"]
    )
    assert Path(bad["log"]).exists()
    assert good["status"] == "tested", good
    # The human view names the failure and its log.
    proc = run("build", "--plan", str(plan), "--out", str(tmp_path / "w2"), env=env)
    assert proc.returncode == 1 and "sha256 mismatch" in proc.stdout and "log:" in proc.stdout


def test_build_usage_errors(tmp_path: Path, env) -> None:
    proc = run("build", env=env)
    assert proc.returncode == 2 and "give a RECIPE or --plan" in proc.stderr
    proc = run("build", "--plan", "nowhere.json", env=env)
    assert proc.returncode == 2 and "nowhere.json" in proc.stderr
    recipe = tmp_path / "wf-cli.toml"
    recipe.write_text(RECIPE)
    proc = run("build", str(recipe), "--target", "manylinux_2_17_sparc", env=env)
    assert proc.returncode == 2 and "manylinux_2_17_sparc" in proc.stderr
    bad = tmp_path / "plan.json"
    bad.write_text("{}")
    proc = run("build", "--plan", str(bad), env=env)
    assert proc.returncode == 1 and "not a plan" in proc.stderr


def test_doctor_json_lists_tools_pythons_and_combinations(env) -> None:
    proc = run("doctor", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    tools = {t["name"]: t for t in doc["tools"]}
    assert tools["zig"]["path"] and tools["zig"]["version"]
    assert tools["qemu-aarch64"]["path"]
    combos = {(c["python"], c["target"]): c for c in doc["combos"]}
    assert combos[("3.11", "manylinux_2_17_aarch64")]["testable"] is True
    assert combos[("3.12", "manylinux_2_17_aarch64")] == {
        "python": "3.12",
        "target": "manylinux_2_17_aarch64",
        "buildable": True,
        "testable": False,
        "why": "Debian has no arm64 python3.12",
    }
    assert combos[("3.11", "musllinux_1_2_aarch64")]["buildable"] is False
    assert combos[("3.11", "macosx_11_0_arm64")] == {
        "python": "3.11",
        "target": "macosx_11_0_arm64",
        "buildable": True,
        "testable": False,
        "why": "no macOS to run on",
    }
    assert tools["llvm (macOS repair)"]["path"] and tools["delocate-wheel"]["path"]
    # The first --install fetches what a fresh machine lacks (the emulated backend's qemu may not be
    # here yet when this test runs first); a second one must find nothing to do.
    assert run("doctor", "--install", "--json", env=env).returncode == 0
    installed = run("doctor", "--install", "--json", env=env)
    assert installed.returncode == 0 and "nothing was missing" in installed.stderr
    human = run("doctor", env=env)
    assert (
        human.returncode == 0
        and "qemu-aarch64" in human.stdout
        and "Python x target" in human.stdout
    )


WARN_RECIPE = """
[project]
name = "wf-warn"
pythons = ["3.11"]
targets = ["manylinux_2_17_aarch64"]

[[native]]
name = "openssl"
source = "debian:libssl-dev"
build-system = "debian-binary"
args = ["libssl3"]

[test]
imports = ["wf_warn"]
"""


def test_a_native_library_warning_reaches_the_console_at_once_and_in_the_summary(
    tmp_path: Path, env
) -> None:
    """Debian 12's arm64 libssl3 needs glibc 2.3x, above manylinux_2_17: the warning is on the
    console when the library is prepared (before the wheel is built), and again after the table."""
    sdist = make_sdist(tmp_path / "sdist", "wf-warn", "1.0.0", c_extension=True)
    recipe = tmp_path / "wf-warn.toml"
    recipe.write_text(WARN_RECIPE)
    proc = run(
        "build", str(recipe), "--sdist", str(sdist), "--version", "1.0.0", "--no-test",
        "--out", str(tmp_path / "wheels"), env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()  # a pipe: plain lines, one per step
    warned = [
        i for i, line in enumerate(lines) if "warning: openssl: libssl.so.3 needs glibc" in line
    ]
    building = [i for i, line in enumerate(lines) if "building wf-warn 1.0.0 for cp3.11" in line]
    assert warned and building and warned[0] < building[0], proc.stderr
    assert "the wheel will only reach manylinux_2_" in lines[warned[0]]
    summary = proc.stdout.splitlines()
    assert any(line.startswith("wf-warn") and "built" in line for line in summary), proc.stdout
    assert any(
        line.startswith(
            "warning: wf-warn 1.0.0 cp3.11 manylinux_2_17_aarch64: openssl: libssl.so.3"
        )
        for line in summary
    ), proc.stdout
