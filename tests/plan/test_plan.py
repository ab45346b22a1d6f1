"""The planner against a local upstream and a local "own" index, each a real HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.static_index import FileSpec, StaticIndexServer, write_static_index

from builder.cli import main
from builder.common.httpcache import HttpCache
from builder.common.upstream import DistFile, IndexClient
from builder.plan.planner import BUILD, OURS, SKIP, UPSTREAM, Job, Plan, load_recipes, plan

PY = ["3.11", "3.12", "3.13t"]
TG = ["manylinux_2_28_aarch64", "musllinux_1_2_aarch64", "macosx_11_0_arm64"]


def sd(name: str, version: str, **kw) -> FileSpec:
    return FileSpec(f"{name}-{version}.tar.gz", f"{name} {version} sdist".encode(), **kw)


def wh(name: str, version: str, tag: str, **kw) -> FileSpec:
    return FileSpec(f"{name}-{version}-{tag}.whl", f"{name} {version} {tag}".encode(), **kw)


UPSTREAM_PROJECTS = {
    "sdist-only": [sd("sdist_only", "1.0")],
    "has-wheels": [
        sd("has_wheels", "2.0"),
        wh("has_wheels", "2.0", "cp311-cp311-manylinux_2_17_aarch64"),
        wh("has_wheels", "2.0", "cp311-cp311-macosx_10_9_universal2"),
        wh("has_wheels", "2.0", "cp312-cp312-manylinux_2_17_x86_64"),
        wh("has_wheels", "2.0", "cp312-cp312-manylinux_2_17_aarch64", yanked="bad build"),
    ],
    "abi3-proj": [
        sd("abi3_proj", "1.0"),
        wh("abi3_proj", "1.0", "cp38-abi3-manylinux2014_aarch64"),
    ],
    "pure": [sd("pure", "1.0"), wh("pure", "1.0", "py3-none-any")],
    "yanked-proj": [sd("yanked_proj", "1.0"), sd("yanked_proj", "1.1", yanked="broken build")],
    "no-sdist": [wh("no_sdist", "1.0", "cp311-cp311-manylinux_2_17_x86_64")],
    "new-python": [sd("new_python", "1.0", requires_python=">=3.12")],
    "ours-proj": [sd("ours_proj", "1.0")],
    "fake-arch": [
        sd("fake_arch", "1.0"),
        wh("fake_arch", "1.0", "cp311-cp311-manylinux_2_17_aarch64"),
    ],
    "many-versions": [sd("many_versions", v) for v in ("1.0", "1.1", "2.0rc1", "2.0", "2.1")],
    "garbage": [sd("garbage", "1.0")],
    "new-glibc": [
        sd("new_glibc", "1.0"),
        wh("new_glibc", "1.0", "cp311-cp311-manylinux_2_34_aarch64"),
    ],
}
OWN_PROJECTS = {"ours-proj": [wh("ours_proj", "1.0", "cp311-cp311-manylinux_2_28_aarch64")]}


def recipe_text(name: str, *, versions: str | None = None, latest: int | None = None,
                pythons=PY, targets=TG, extra: str = "") -> str:  # fmt: skip
    lines = ["[project]", f'name = "{name}"']
    if versions:
        lines.append(f'versions = "{versions}"')
    if latest:
        lines.append(f"latest = {latest}")
    lines += [f"pythons = {json.dumps(list(pythons))}", f"targets = {json.dumps(list(targets))}"]
    lines += [extra, "[test]", f'imports = ["{name.replace("-", "_")}"]', ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StaticIndexServer, StaticIndexServer]]:
    up_root, own_root = tmp_path_factory.mktemp("upstream"), tmp_path_factory.mktemp("own")
    write_static_index(up_root, UPSTREAM_PROJECTS)
    write_static_index(own_root, OWN_PROJECTS)
    with StaticIndexServer(up_root) as up, StaticIndexServer(own_root) as own:
        up.behave("/simple/garbage/", garbage=True)
        yield up, own


@pytest.fixture(scope="module")
def recipes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("recipes")
    for name in UPSTREAM_PROJECTS:
        (d / f"{name}.toml").write_text(recipe_text(name))
    (d / "yanked-proj.toml").write_text(recipe_text("yanked-proj", latest=1))
    (d / "many-versions.toml").write_text(
        recipe_text("many-versions", versions=">=1.1", latest=2, pythons=["3.11"], targets=TG[:1])
    )
    (d / "pure.toml").write_text(recipe_text("pure", extra='[build]\nskip = "*-musllinux_*"'))
    (d / "not-on-index.toml").write_text(recipe_text("not-on-index"))
    (d / "broken.toml").write_text("[project\n")
    (d / "unknown-key.toml").write_text(
        recipe_text("unknown-key").replace("[test]", "wat = 1\n[test]")
    )
    return d


def fake_arch_check(wheel: DistFile, target: str) -> str | None:
    """Stands in for builder/check: this wheel's ELF files are x86-64 whatever its tag says."""
    return "ELF machine is x86-64, not aarch64" if wheel.filename.startswith("fake_arch-") else None


@pytest.fixture(scope="module")
def result(servers, recipes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Plan:
    up, own = servers
    cache = HttpCache(tmp_path_factory.mktemp("cache"))
    recipes, errors = load_recipes([recipes_dir])
    with (
        IndexClient(up.url, cache=cache, backoff=0.01) as u,
        IndexClient(own.url, cache=cache) as o,
    ):
        return plan(recipes, u, o, wheel_check=fake_arch_check, errors=errors)


def cell(result: Plan, project: str, python: str, target: str, version: str | None = None):
    found = [
        d for d in result.decisions
        if (d.project, d.python, d.target) == (project, python, target)
        and (version is None or d.version == version)
    ]  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def test_only_sdist_is_built_for_every_cell(result: Plan) -> None:
    cells = [d for d in result.decisions if d.project == "sdist-only"]
    assert len(cells) == len(PY) * len(TG)
    assert {(d.status, d.reason) for d in cells} == {(BUILD, "only an sdist upstream")}
    job = cells[0].job
    assert job and job.sdist_filename == "sdist_only-1.0.tar.gz" and job.version == "1.0"
    assert job.sdist_sha256 == sd("sdist_only", "1.0").sha256
    assert job.sdist_url.endswith("/files/sdist_only-1.0.tar.gz")
    assert job.recipe_path.endswith("sdist-only.toml")


def test_tag_compatibility_decides(result: Plan) -> None:
    d = cell(result, "has-wheels", "3.11", "manylinux_2_28_aarch64")
    assert (d.status, d.file) == (UPSTREAM, "has_wheels-2.0-cp311-cp311-manylinux_2_17_aarch64.whl")
    d = cell(result, "has-wheels", "3.11", "macosx_11_0_arm64")
    assert (d.status, d.file) == (UPSTREAM, "has_wheels-2.0-cp311-cp311-macosx_10_9_universal2.whl")
    # the cp312 aarch64 wheel is yanked: it does not count
    d = cell(result, "has-wheels", "3.12", "manylinux_2_28_aarch64")
    assert (d.status, d.reason) == (BUILD, "no wheel for Python 3.12 on this platform")
    d = cell(result, "has-wheels", "3.11", "musllinux_1_2_aarch64")
    assert (d.status, d.reason) == (BUILD, "no wheel for this platform (musllinux_1_2_aarch64)")
    d = cell(result, "has-wheels", "3.13t", "musllinux_1_2_aarch64")
    assert (d.status, d.reason) == (BUILD, "no wheel for this platform or Python")
    # abi3 from cp38 covers later GIL Pythons on manylinux, not free-threaded ones
    assert cell(result, "abi3-proj", "3.12", "manylinux_2_28_aarch64").status == UPSTREAM
    assert cell(result, "abi3-proj", "3.13t", "manylinux_2_28_aarch64").status == BUILD
    assert cell(result, "abi3-proj", "3.12", "macosx_11_0_arm64").status == BUILD


def test_pure_wheel_covers_all_and_selectors_skip(result: Plan) -> None:
    for py in PY:
        assert cell(result, "pure", py, "macosx_11_0_arm64").file == "pure-1.0-py3-none-any.whl"
        d = cell(result, "pure", py, "musllinux_1_2_aarch64")
        assert (d.status, d.reason) == (SKIP, "excluded by the recipe's build/skip selectors")


def test_skips_with_reasons(result: Plan) -> None:
    yanked = [d for d in result.decisions if d.project == "yanked-proj" and d.version == "1.1"]
    assert yanked and {(d.status, d.reason) for d in yanked} == {(SKIP, "yanked: broken build")}
    assert {
        d.status for d in result.decisions if d.project == "yanked-proj" and d.version == "1.0"
    } == {BUILD}
    d = cell(result, "no-sdist", "3.11", "manylinux_2_28_aarch64")
    assert (d.status, d.reason) == (SKIP, "no sdist to build from")
    d = cell(result, "new-python", "3.11", "manylinux_2_28_aarch64")
    assert (d.status, d.reason) == (SKIP, "requires-python >=3.12 excludes 3.11")
    assert cell(result, "new-python", "3.12", "manylinux_2_28_aarch64").status == BUILD


def test_own_index_and_architecture_hook(result: Plan) -> None:
    d = cell(result, "ours-proj", "3.11", "manylinux_2_28_aarch64")
    assert (d.status, d.file) == (OURS, "ours_proj-1.0-cp311-cp311-manylinux_2_28_aarch64.whl")
    assert cell(result, "ours-proj", "3.12", "manylinux_2_28_aarch64").status == BUILD
    d = cell(result, "fake-arch", "3.11", "manylinux_2_28_aarch64")
    assert d.status == BUILD
    assert d.reason.startswith("upstream wheel fails the architecture check (fake_arch-1.0-cp311")
    assert "x86-64" in d.reason


def test_wheel_for_a_newer_platform_is_named(result: Plan) -> None:
    d = cell(result, "new-glibc", "3.11", "manylinux_2_28_aarch64")
    assert (d.status, d.reason) == (
        BUILD,
        "upstream wheel needs a newer platform (manylinux_2_34_aarch64)",
    )
    d = cell(result, "new-glibc", "3.12", "manylinux_2_28_aarch64")
    assert d.reason == "no wheel for this platform or Python"


def test_a_failing_check_hook_is_an_error_not_a_pass(
    servers, recipes_dir: Path, tmp_path: Path
) -> None:
    up, _ = servers
    recipes, _ = load_recipes([recipes_dir / "has-wheels.toml", recipes_dir / "sdist-only.toml"])

    def broken(wheel: DistFile, target: str) -> str | None:
        raise OSError("download interrupted")

    with IndexClient(up.url, cache=HttpCache(tmp_path)) as u:
        p = plan(recipes, u, wheel_check=broken)
    (err,) = p.errors
    assert err.source.endswith("has-wheels.toml") and "download interrupted" in str(err)
    assert {d.project for d in p.decisions} == {"sdist-only"}


def test_version_selection(result: Plan) -> None:
    versions = [d.version for d in result.decisions if d.project == "many-versions"]
    assert versions == ["2.1", "2.0"]  # >=1.1, newest 2, pre-release left out


def test_bad_inputs_are_reported_and_the_rest_planned(result: Plan, servers) -> None:
    up, _ = servers
    errors = {Path(e.source).name: str(e) for e in result.errors}
    assert set(errors) == {"broken.toml", "unknown-key.toml", "not-on-index.toml", "garbage.toml"}
    assert "TOML syntax error" in errors["broken.toml"]
    assert "project.wat: unknown key" in errors["unknown-key.toml"]
    assert (
        f"{up.url}not-on-index/: no project 'not-on-index' on this index (404)"
        in errors["not-on-index.toml"]
    )
    assert "/simple/garbage/: garbage instead of PEP 691 JSON" in errors["garbage.toml"]
    assert all("\n" not in e for e in errors.values())
    assert not [d for d in result.decisions if d.project in ("garbage", "not-on-index")]
    assert len(result.jobs) > 10


def test_jobs_round_trip_as_a_matrix(result: Plan) -> None:
    doc = json.loads(json.dumps(result.to_dict()))
    assert set(doc) >= {"include", "skipped", "available", "errors", "summary"}
    jobs = [Job.from_dict(j) for j in doc["include"]]
    assert tuple(jobs) == result.jobs
    for entry in doc["include"]:
        assert all(isinstance(v, str) for v in entry.values())  # scalar matrix values
    assert {j.index for j in jobs} == {result.jobs[0].index} and "/simple/" in jobs[0].index
    assert doc["summary"]["build"] == len(jobs)
    with pytest.raises(ValueError, match="missing"):
        Job.from_dict({"project": "x"})


def test_filters(servers, recipes_dir: Path, tmp_path: Path) -> None:
    up, _ = servers
    recipes, _ = load_recipes([recipes_dir / "sdist-only.toml"])
    with IndexClient(up.url, cache=HttpCache(tmp_path)) as u:
        p = plan(recipes, u, pythons=["3.12"], targets=["macosx_11_0_arm64"])
    assert [(d.python, d.target) for d in p.decisions] == [("3.12", "macosx_11_0_arm64")]


def test_cli_json_and_exit_status(
    servers, recipes_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up, own = servers
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))
    args = ["plan", "--index", up.url, "--own-index", own.url, "--json", str(recipes_dir)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1  # the bad recipes make the run fail, after planning the rest
    doc = json.loads(res.stdout)
    assert len(doc["include"]) > 10 and len(doc["errors"]) == 4
    assert doc["http"]["requests"] >= len(UPSTREAM_PROJECTS)
    # The runner-minute estimate: setup per cibuildwheel run + minutes per wheel (defaults 4 + 6).
    cost = doc["estimate"]
    runs = {(j["project"], j["version"], j["target"]) for j in doc["include"]}
    assert cost["jobs"] == len(doc["include"]) and cost["runs"] == len(runs)
    assert cost["runner_minutes"] == 4 * len(runs) + 6 * len(doc["include"])
    assert set(cost["by_platform"]) <= {"linux", "macos"}
    res = CliRunner().invoke(main, [*args, "--minutes-setup", "1", "--minutes-per-build", "0"])
    assert json.loads(res.stdout)["estimate"]["runner_minutes"] == len(runs)
    # Human output: one line per cell, errors on stderr.
    good = [str(recipes_dir / f"{n}.toml") for n in ("sdist-only", "pure")]
    res = CliRunner().invoke(main, ["plan", "--index", up.url, "--python", "3.11", *good])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(
        line.split()[:5] == ["sdist-only", "1.0", "3.11", "manylinux_2_28_aarch64", "build"]
        for line in lines
    )
    assert any("pure-1.0-py3-none-any.whl" in line for line in lines)
    assert len(lines) == 6


def test_cli_pip_index_and_check_hook(
    servers, recipes_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up, _ = servers
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", up.url)
    recipe = str(recipes_dir / "fake-arch.toml")
    args = [
        "plan",
        "--index",
        "pip",
        "--python",
        "3.11",
        "--target",
        "manylinux_2_28_aarch64",
        "--json",
    ]
    res = CliRunner().invoke(main, [*args, "--wheel-check", "test_plan:fake_arch_check", recipe])
    assert res.exit_code == 0, res.output
    (job,) = json.loads(res.stdout)["include"]
    assert "fails the architecture check" in job["reason"] and "x86-64" in job["reason"]
    res = CliRunner().invoke(main, [*args, recipe])  # without the hook the tag is trusted
    assert res.exit_code == 0 and json.loads(res.stdout)["include"] == []
    res = CliRunner().invoke(main, [*args, "--wheel-check", "test_plan:nope", recipe])
    assert res.exit_code == 1 and "--wheel-check test_plan:nope" in res.output
    res = CliRunner().invoke(main, ["plan", "--target", "linux_aarch64", recipe])
    assert res.exit_code == 2 and "not a platform tag" in res.output


def test_console_script_end_to_end(servers, recipes_dir: Path, tmp_path: Path) -> None:
    up, _ = servers
    env = os.environ | {"WHEELFARM_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        ["wheelfarm", "plan", "--index", up.url, str(recipes_dir / "broken.toml"), str(recipes_dir / "sdist-only.toml")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert f"error: {recipes_dir / 'broken.toml'}: TOML syntax error" in out.stderr
    assert out.stdout.count("only an sdist upstream") == len(PY) * len(TG)


def test_two_recipes_for_one_project(servers, recipes_dir: Path, tmp_path: Path) -> None:
    up, _ = servers
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "sdist-only.toml").write_text(recipe_text("Sdist_Only"))
    recipes, _ = load_recipes([recipes_dir / "sdist-only.toml", other])
    with IndexClient(up.url, cache=HttpCache(tmp_path / "c")) as u:
        p = plan(recipes, u)
    (err,) = p.errors
    assert err.source == str(other / "sdist-only.toml") and "the same project as" in err.message
    assert len(p.jobs) == len(PY) * len(TG)


def test_slow_upstream_times_out_and_the_rest_is_planned(recipes_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "idx"
    write_static_index(
        root, {"sdist-only": UPSTREAM_PROJECTS["sdist-only"], "pure": UPSTREAM_PROJECTS["pure"]}
    )
    recipes, _ = load_recipes([recipes_dir / "sdist-only.toml", recipes_dir / "pure.toml"])
    with StaticIndexServer(root) as srv:
        srv.behave("/simple/pure/", sleep=1.0)
        with IndexClient(srv.url, cache=HttpCache(tmp_path / "c"), timeout=0.3, retries=0) as u:
            p = plan(recipes, u)
    (err,) = p.errors
    assert (
        str(err) == f"{recipes_dir / 'pure.toml'}: {srv.url}pure/: timed out after 0.3s (1 attempt)"
    )
    assert len(p.jobs) == len(PY) * len(TG)


def test_unreachable_upstream_is_one_line(recipes_dir: Path, tmp_path: Path) -> None:
    recipes, _ = load_recipes([recipes_dir / "sdist-only.toml"])
    with IndexClient(
        "http://127.0.0.1:9/simple/", cache=HttpCache(tmp_path), retries=1, backoff=0.01
    ) as u:
        p = plan(recipes, u)
    (err,) = p.errors
    assert "127.0.0.1:9/simple/sdist-only/: network error" in str(err) and "(2 attempts)" in str(
        err
    )


def test_recipe_for_shipped_example_plans_offline(servers, tmp_path: Path) -> None:
    """The shipped confluent-kafka recipe plans against a local copy of its (old, fixed) file list."""
    root = tmp_path / "idx"
    write_static_index(root, {"confluent-kafka": [
        sd("confluent-kafka", "2.0.2"),
        wh("confluent_kafka", "2.0.2", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        wh("confluent_kafka", "2.0.2", "cp311-cp311-macosx_11_0_arm64"),
    ]})  # fmt: skip
    recipes, errors = load_recipes([Path(__file__).parents[2] / "recipes" / "confluent-kafka.toml"])
    assert not errors
    with StaticIndexServer(root) as srv, IndexClient(srv.url, cache=HttpCache(tmp_path / "c")) as u:
        p = plan(recipes, u)
    assert {(j.python, j.target) for j in p.jobs} == {
        ("3.11", "manylinux_2_17_aarch64"),
        ("3.12", "manylinux_2_17_aarch64"),
    }


@pytest.fixture(autouse=True)
def _quiet_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_recipe_text_helper_is_lint_clean(tmp_path: Path) -> None:
    from builder.recipes.recipe import load_recipe

    p = tmp_path / "x.toml"
    p.write_text(textwrap.dedent(recipe_text("x")))
    assert load_recipe(p).name == "x"


def test_a_job_records_the_index_it_was_planned_against() -> None:
    """The parity gate of a plan-driven build compares with that index's wheels, not PyPI's; a plan
    written before jobs recorded it still loads."""
    job = Job("x", "1.0", "https://i.example/f/x-1.0.tar.gz", "0" * 64, "x-1.0.tar.gz", "3.11",
              "manylinux_2_17_aarch64", "only an sdist upstream", "recipes/x.toml",
              index="https://i.example/simple/")  # fmt: skip
    assert Job.from_dict(job.to_dict()) == job
    old = {k: v for k, v in job.to_dict().items() if k != "index"}
    assert Job.from_dict(old).index == ""
