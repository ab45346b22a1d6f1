"""The GitHub Actions workflows: actionlint (with shellcheck over every `run:`) finds nothing, and the
farm's rules hold: only the nightly's publish job sees the index token, builds run on native runners."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builder.build.backends.cibuildwheel import RUNNERS
from builder.cli import SUBCOMMANDS

ROOT = Path(__file__).parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def run_scripts(doc: dict) -> list[str]:
    return [step.get("run", "") for job in doc["jobs"].values() for step in job["steps"]]


def test_actionlint_finds_nothing():
    actionlint = Path(sys.executable).with_name("actionlint")
    assert actionlint.exists(), "actionlint is installed with the test extras"
    assert shutil.which("shellcheck"), "shellcheck (tests/debian-packages.txt) checks run: scripts"
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "recipes.yml", "nightly.yml"}
    proc = subprocess.run(
        [str(actionlint), "-no-color", "-oneline", "-verbose", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert 'Rule "shellcheck" was disabled' not in proc.stderr


def test_ci_runs_the_readme_test_command():
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert "bash .ci/run" in run_scripts(ci)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_recipes_workflow_lints_plans_builds_and_uploads_changed_recipes():
    doc = load("recipes.yml")
    assert doc["on"]["pull_request"]["paths"] == ["recipes/**"]
    scripts = "\n".join(run_scripts(doc))
    for command in ("wheelfarm recipe lint", "wheelfarm plan --json", "wheelfarm build --plan"):
        assert command in scripts
    uses = [s.get("uses", "") for s in doc["jobs"]["build"]["steps"]]
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert "secrets." not in (WORKFLOWS / "recipes.yml").read_text()


def test_nightly_fans_out_over_native_runners_and_only_publish_sees_the_token():
    doc = load("nightly.yml")
    assert doc["on"]["schedule"][0]["cron"] and "workflow_dispatch" in doc["on"]
    jobs = doc["jobs"]
    assert list(jobs) == ["plan", "build", "publish"]
    assert "wheelfarm cibw-options --plan plan.json --matrix" in "\n".join(
        s.get("run", "") for s in jobs["plan"]["steps"]
    )
    build = jobs["build"]
    assert build["runs-on"] == "${{ matrix.runner }}"
    assert build["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert set(RUNNERS.values()) == {"ubuntu-24.04-arm", "macos-14"}
    assert "wheelfarm cibw-build" in "\n".join(s.get("run", "") for s in build["steps"])
    assert jobs["publish"]["needs"] == ["plan", "build"]
    secrets = {
        name for name, job in jobs.items() if "secrets." in yaml.safe_dump(job, sort_keys=False)
    }
    assert secrets == {"publish"}
    publish_steps = jobs["publish"]["steps"]
    with_token = [s for s in publish_steps if "secrets." in yaml.safe_dump(s)]
    assert len(with_token) == 1
    assert with_token[0]["env"]["WHEELFARM_INDEX_TOKEN"] == "${{ secrets.WHEELFARM_INDEX_TOKEN }}"
    assert with_token[0]["run"].startswith("wheelfarm publish ")
    assert doc["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("name", ["recipes.yml", "nightly.yml"])
def test_workflows_call_wheelfarm_commands_that_exist(name):
    used = set(re.findall(r"wheelfarm ([a-z][a-z-]*)", "\n".join(run_scripts(load(name)))))
    assert used
    assert used <= set(SUBCOMMANDS)
