"""Recipe + plan -> cibuildwheel options, checked by the real cibuildwheel: it must select exactly the
planned build identifiers and read every option back as the recipe meant it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.projects import make_sdist, write_project

from builder.build.backends.cibuildwheel import (
    CibwError,
    CibwUnavailable,
    check_selection,
    cibuildwheel_runs,
    format_config_settings,
    format_environment,
    github_env,
    linux_image,
    run_cibuildwheel,
    selected_identifiers,
    unavailable_reason,
)
from builder.cli import main
from builder.common.targets import parse_target
from builder.plan.planner import Job
from builder.recipes.recipe import load_recipe

RECIPE = textwrap.dedent(
    """
    [project]
    name = "Demo_Ext"
    versions = "==1.0.0"
    pythons = ["3.11", "3.12", "3.14t"]
    targets = ["manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "musllinux_1_2_aarch64",
               "macosx_11_0_arm64", "macosx_14_0_arm64"]

    [build]
    backend = "cibuildwheel"
    environment = { CFLAGS = "-O2 -g0", LIBDIR = "$HOME/lib dir" }
    before-all = "echo once"
    before-build = "echo each"
    config-settings = { "--build-option" = ["--a", "--b c"], "setup-args" = "-Dx=1" }

    [test]
    imports = ["demo_ext", "demo_ext._native"]
    call = "import demo_ext; assert demo_ext.triangle(4) == 10"
    test-requires = ["pytest>=8", "numpy ; python_version < '3.13'"]
    """
)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    return make_sdist(tmp_path_factory.mktemp("sdist"), "demo-ext", "1.0.0", c_extension=True)


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipes" / "demo-ext.toml"
    path.parent.mkdir()
    path.write_text(RECIPE)
    return load_recipe(path)


def plan_jobs(recipe, sdist: Path, cells=None) -> list[Job]:
    sha = hashlib.sha256(sdist.read_bytes()).hexdigest()
    cells = cells or [(py, tgt) for py in recipe.pythons for tgt in recipe.targets]
    return [
        Job(
            project="demo-ext",
            version="1.0.0",
            sdist_url=f"https://files.example/{sdist.name}",
            sdist_sha256=sha,
            sdist_filename=sdist.name,
            python=py,
            target=tgt,
            reason="no wheel upstream",
            recipe_path=str(recipe.path),
        )
        for py, tgt in cells
    ]


def test_runs_group_by_image_and_deployment_target(recipe, sdist):
    runs = {r.id: r for r in cibuildwheel_runs(recipe, plan_jobs(recipe, sdist))}
    assert set(runs) == {
        "demo-ext-1.0.0-linux-manylinux2014",
        "demo-ext-1.0.0-linux-manylinux_2_28",
        "demo-ext-1.0.0-linux-musllinux_1_2",
        "demo-ext-1.0.0-macos-macosx_11_0",
        "demo-ext-1.0.0-macos-macosx_14_0",
    }
    m2014 = runs["demo-ext-1.0.0-linux-manylinux2014"]
    assert m2014.identifiers == (
        "cp311-manylinux_aarch64",
        "cp312-manylinux_aarch64",
        "cp314t-manylinux_aarch64",
    )
    assert m2014.env["CIBW_BUILD"] == " ".join(m2014.identifiers)
    assert m2014.env["CIBW_ARCHS"] == "aarch64" and m2014.env["CIBW_PLATFORM"] == "linux"
    assert m2014.env["CIBW_MANYLINUX_AARCH64_IMAGE"] == "manylinux2014"
    assert m2014.runner == "ubuntu-24.04-arm" and len(m2014.jobs) == 3
    assert runs["demo-ext-1.0.0-linux-manylinux_2_28"].env["CIBW_MANYLINUX_AARCH64_IMAGE"] == (
        "manylinux_2_28"
    )
    musl = runs["demo-ext-1.0.0-linux-musllinux_1_2"]
    assert musl.env["CIBW_MUSLLINUX_AARCH64_IMAGE"] == "musllinux_1_2"
    assert "CIBW_MANYLINUX_AARCH64_IMAGE" not in musl.env
    mac = runs["demo-ext-1.0.0-macos-macosx_11_0"]
    assert mac.identifiers == ("cp311-macosx_arm64", "cp312-macosx_arm64", "cp314t-macosx_arm64")
    assert mac.env["MACOSX_DEPLOYMENT_TARGET"] == "11.0" and mac.runner == "macos-14"
    assert runs["demo-ext-1.0.0-macos-macosx_14_0"].env["MACOSX_DEPLOYMENT_TARGET"] == "14.0"
    assert mac.env["CIBW_REPAIR_WHEEL_COMMAND_MACOS"] == (
        "delocate-wheel --require-archs arm64 -w {dest_dir} -v {wheel}"
    )
    # The recipe's options are the same in every run.
    for run in runs.values():
        assert run.env["CIBW_BEFORE_ALL"] == "echo once"
        assert run.env["CIBW_BEFORE_BUILD"] == "echo each"
        assert json.loads(json.dumps(run.to_dict()))["id"] == run.id


def test_image_follows_the_glibc_floor():
    assert linux_image(parse_target("manylinux2014_aarch64")) == "manylinux2014"
    assert linux_image(parse_target("manylinux_2_27_aarch64")) == "manylinux2014"
    assert linux_image(parse_target("manylinux_2_31_aarch64")) == "manylinux_2_28"
    assert linux_image(parse_target("manylinux_2_39_aarch64")) == "manylinux_2_34"
    with pytest.raises(CibwError, match="manylinux_2_12_x86_64"):
        linux_image(parse_target("manylinux_2_12_x86_64"))


@pytest.mark.parametrize("package_kind", ["sdist", "folder"])
def test_cibuildwheel_selects_exactly_the_planned_identifiers(
    recipe, sdist, tmp_path, package_kind
):
    # A partial plan: upstream already has some cells, so only these are planned.
    cells = [
        ("3.12", "manylinux_2_17_aarch64"),
        ("3.11", "manylinux_2_28_aarch64"),
        ("3.12", "manylinux_2_28_aarch64"),
        ("3.11", "musllinux_1_2_aarch64"),
        ("3.12", "macosx_11_0_arm64"),
        ("3.14t", "macosx_11_0_arm64"),
    ]
    if package_kind == "sdist":
        package = sdist
    else:
        package = write_project(tmp_path, "demo-ext", c_extension=True)
    runs = cibuildwheel_runs(recipe, plan_jobs(recipe, sdist, cells))
    assert sum(len(r.identifiers) for r in runs) == len(cells)
    for run in runs:
        assert selected_identifiers(run, package) == list(run.identifiers), run.id
        check_selection(run, package)
    # Without the options cibuildwheel would build far more: the selection is ours.
    cmd = [*runs[0].command(package, tmp_path)[:-3], "--print-build-identifiers", str(package)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    everything = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert len(everything.stdout.split()) > len(runs[0].identifiers)


def test_cibuildwheel_reads_the_options_back_as_the_recipe_means_them(recipe, sdist, tmp_path):
    from cibuildwheel.options import CommandLineArguments, compute_options

    folder = write_project(tmp_path, "demo-ext", c_extension=True)
    runs = {r.id.rsplit("-", 1)[1]: r for r in cibuildwheel_runs(recipe, plan_jobs(recipe, sdist))}
    linux = runs["manylinux2014"]
    args = dataclasses.replace(CommandLineArguments.defaults(), archs="aarch64", package_dir=folder)
    options = compute_options("linux", args, linux.env)
    build = options.build_options("cp311-manylinux_aarch64")
    env = build.environment.as_dictionary({"HOME": "/home/u"})
    assert env["CFLAGS"] == "-O2 -g0" and env["LIBDIR"] == "/home/u/lib dir"
    assert build.before_all == "echo once" and build.before_build == "echo each"
    assert shlex.split(build.config_settings) == [
        "--build-option=--a",
        "--build-option=--b c",
        "setup-args=-Dx=1",
    ]
    assert build.test_requires == ["pytest>=8", "numpy ; python_version < '3.13'"]
    code = shlex.split(build.test_command)
    assert code[:2] == ["python", "-c"]
    assert code[2] == (
        "import demo_ext; import demo_ext._native; "
        "import demo_ext; assert demo_ext.triangle(4) == 10"
    )
    assert "manylinux2014_aarch64" in build.manylinux_images["aarch64"]

    mac = runs["macosx_11_0"]
    mac_args = dataclasses.replace(args, archs="arm64")
    mac_build = compute_options("macos", mac_args, mac.env).build_options("cp312-macosx_arm64")
    assert (
        mac_build.repair_command == "delocate-wheel --require-archs arm64 -w {dest_dir} -v {wheel}"
    )


def test_a_python_cibuildwheel_cannot_build_is_an_error_not_a_silent_skip(recipe, sdist):
    # cibuildwheel 3.x built free-threaded 3.13 behind an enable group; 4.x dropped it.
    (run,) = cibuildwheel_runs(recipe, plan_jobs(recipe, sdist, [("3.13t", "macosx_11_0_arm64")]))
    assert selected_identifiers(run, sdist) == []
    with pytest.raises(CibwError, match=r"cannot build cp313t-macosx_arm64"):
        check_selection(run, sdist)


def test_formats_match_cibuildwheel():
    assert format_environment({"A": "1", "B": "x y"}) == 'A="1" B="x y"'
    with pytest.raises(CibwError, match="double quote"):
        format_environment({"A": 'say "hi"'})
    assert format_config_settings({"k": ["a b", "c"], "j": "d"}) == "k='a b' k=c j=d"
    assert github_env({"A": "1", "B": "two\nlines"}).startswith("A=1\nB<<WHEELFARM_")


def test_recipe_test_command_wins_and_build_requires_is_refused(recipe, sdist, tmp_path):
    jobs = plan_jobs(recipe, sdist, [("3.11", "manylinux_2_28_aarch64")])
    custom = dataclasses.replace(
        recipe, test=dataclasses.replace(recipe.test, test_command="pytest {project}/tests")
    )
    (run,) = cibuildwheel_runs(custom, jobs)
    assert run.env["CIBW_TEST_COMMAND"] == "pytest {project}/tests"
    needs = dataclasses.replace(
        recipe, build=dataclasses.replace(recipe.build, build_requires=("cython",))
    )
    with pytest.raises(CibwError, match="build-requires"):
        cibuildwheel_runs(needs, jobs)
    assert cibuildwheel_runs(recipe, []) == []


def test_runner_refuses_clearly_where_cibuildwheel_cannot_run(recipe, sdist, tmp_path):
    jobs = plan_jobs(
        recipe, sdist, [("3.11", "manylinux_2_28_aarch64"), ("3.11", "macosx_11_0_arm64")]
    )
    for run in cibuildwheel_runs(recipe, jobs):
        reason = unavailable_reason(run)
        assert reason is not None and run.id in reason  # this machine is x86_64 Linux
        with pytest.raises(CibwUnavailable) as exc:
            run_cibuildwheel(run, sdist, tmp_path / "out")
        assert str(exc.value) == reason
        assert not (tmp_path / "out").exists()
    (linux, _) = cibuildwheel_runs(recipe, jobs)
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the planned sdist")
    with pytest.raises(CibwError, match="is not the planned"):
        run_cibuildwheel(linux, other, tmp_path / "out")


def test_cli_matrix_and_env(recipe, sdist, tmp_path):
    plan = tmp_path / "plan.json"
    cells = [("3.11", "manylinux_2_28_aarch64"), ("3.12", "macosx_11_0_arm64")]
    plan.write_text(json.dumps({"include": [j.to_dict() for j in plan_jobs(recipe, sdist, cells)]}))
    runner = CliRunner()
    result = runner.invoke(main, ["cibw-options", "--plan", str(plan), "--matrix"])
    assert result.exit_code == 0, result.output
    matrix = json.loads(result.output)["include"]
    assert [(m["id"], m["runner"], m["identifiers"]) for m in matrix] == [
        ("demo-ext-1.0.0-linux-manylinux_2_28", "ubuntu-24.04-arm", "cp311-manylinux_aarch64"),
        ("demo-ext-1.0.0-macos-macosx_11_0", "macos-14", "cp312-macosx_arm64"),
    ]
    result = runner.invoke(main, ["cibw-options", "--plan", str(plan), "--run", matrix[1]["id"]])
    assert result.exit_code == 0, result.output
    assert "CIBW_BUILD=cp312-macosx_arm64\n" in result.output
    assert "MACOSX_DEPLOYMENT_TARGET=11.0\n" in result.output
    result = runner.invoke(main, ["cibw-options", "--plan", str(plan), "--run", "nope"])
    assert result.exit_code != 0 and "no cibuildwheel run 'nope'" in result.output
    result = runner.invoke(
        main, ["cibw-build", "--plan", str(plan), "--run", matrix[0]["id"], "--sdist", str(sdist)]
    )
    assert result.exit_code != 0 and "native Linux aarch64" in result.output
    # The real command line, as the workflows call it.
    out = subprocess.run(
        [Path(sys.executable).with_name("wheelfarm"), "cibw-options", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--matrix" in out.stdout
