"""The cross pipeline end to end: real zig, real auditwheel, real qemu-aarch64 with Debian's arm64 CPython.

Builds share the real cache (zig's cache, build envs, the bookworm sysroot); state (logs) goes to tmp.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
from support.clib import build_wfdemo, expected_checksum, make_linked_sdist
from support.projects import make_sdist, make_wheel

from builder.build.pipeline import BuildResult, build_sdist, verify_wheel
from builder.build.toolchain.host import zig_command
from builder.common.outcome import Outcome
from builder.recipes.recipe import TestSpec

pytestmark = pytest.mark.slow

TARGET = "manylinux_2_17_aarch64"
CALL = (
    "import wf_ext; assert wf_ext.triangle(10) == 55, wf_ext.triangle(10); "
    "assert wf_ext.machine() == 'aarch64', wf_ext.machine()"
)


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))


def _build(sdist: Path, out: Path, name: str, **kw) -> BuildResult:
    kw.setdefault("python", "3.11")
    kw.setdefault("target", TARGET)
    return build_sdist(sdist, project=name, version="1.0.0", out_dir=out, **kw)


@pytest.fixture(scope="session")
def ext_result(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    root = tmp_path_factory.mktemp("ext")
    sdist = make_sdist(root / "sdist", "wf-ext", c_extension=True)
    spec = TestSpec(imports=("wf_ext", "wf_ext._native"), call=CALL)
    return _build(sdist, root / "out", "wf-ext", test=spec, log_dir=root / "logs")


def test_c_extension_is_built_repaired_checked_and_run_under_qemu(ext_result: BuildResult) -> None:
    r = ext_result
    assert r.status == Outcome.TESTED, r.message
    assert r.wheel is not None and r.wheel.exists() and r.wheel.is_absolute()
    assert "cp311-cp311-manylinux_2_17_aarch64" in r.tags
    assert r.wheel.name.endswith("manylinux2014_aarch64.manylinux_2_17_aarch64.whl")
    with zipfile.ZipFile(r.wheel) as zf:
        sos = [n for n in zf.namelist() if n.endswith(".so")]
    assert sos == ["wf_ext/_native.cpython-311-aarch64-linux-gnu.so"]
    assert verify_wheel(r.wheel, "3.11", TARGET) == []
    log = r.log.read_text()
    assert "wheelfarm-test-ok aarch64 3.11" in log  # printed by the arm64 interpreter under qemu
    assert "qemu-aarch64" in log and "SOURCE_DATE_EPOCH" in log


def test_python_39_wheel_is_tested_with_debian_bullseyes_interpreter(tmp_path: Path) -> None:
    # strlen makes the extension need libc.so.6: before 3.11, auditwheel knows an extension is a
    # glibc one only from that DT_NEEDED entry (from 3.11 on, also from its -linux-gnu suffix), and
    # zig, unlike gcc, adds none to a library that calls nothing in libc.
    prelude = (
        "#include <string.h>\n"
        "static PyObject *slen(PyObject *self, PyObject *args) {\n"
        '    const char *s; if (!PyArg_ParseTuple(args, "s", &s)) return NULL;\n'
        "    return PyLong_FromSize_t(strlen(s)); }\n"
        '#define WF_EXTRA_METHODS {"slen", slen, METH_VARARGS, ""},\n'
    )
    sdist = make_sdist(tmp_path / "sdist", "wf-ext", c_extension=True, prelude_c=prelude)
    call = CALL + "; from wf_ext import _native; assert _native.slen('aarch64') == 7"
    spec = TestSpec(imports=("wf_ext", "wf_ext._native"), call=call)
    r = _build(sdist, tmp_path / "out", "wf-ext", python="3.9", test=spec)
    assert r.status == Outcome.TESTED, (r.message, r.log.read_text()[-2000:])
    assert "cp39-cp39-manylinux_2_17_aarch64" in r.tags
    assert "wheelfarm-test-ok aarch64 3.9." in r.log.read_text()  # bullseye's python3.9 ran it


def test_python_313_wheel_is_tested_with_debian_trixies_interpreter(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-ext", c_extension=True)
    spec = TestSpec(imports=("wf_ext", "wf_ext._native"), call=CALL)
    r = _build(sdist, tmp_path / "out", "wf-ext", python="3.13", test=spec)
    assert r.status == Outcome.TESTED, (r.message, r.log.read_text()[-2000:])
    assert "cp313-cp313-manylinux_2_17_aarch64" in r.tags
    assert "wheelfarm-test-ok aarch64 3.13." in r.log.read_text()  # trixie's python3.13 ran it
    assert r.test is not None and "python3.13 of trixie-arm64" in r.test.interpreter


@pytest.mark.parametrize("python", ["3.14", "3.15"])
def test_sid_interpreters_run_under_qemu(python: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine's Debian mirror is a snapshot: sid's Release file is signed but expired.
    monkeypatch.setenv("WHEELFARM_DEBIAN_ALLOW_EXPIRED", "1")
    from builder.build.toolchain.host import ensure_qemu, test_sysroot

    sysroot = test_sysroot(python)
    assert sysroot is not None
    proc = subprocess.run(
        [ensure_qemu(), "-L", sysroot, sysroot / f"usr/bin/python{python}", "-c",
         "import platform, sys; print(platform.machine(), '%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.stdout.split() == ["aarch64", python], proc.stderr


def test_not_testable_python_is_built_and_reported_not_tested(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-ext", c_extension=True)
    spec = TestSpec(imports=("wf_ext",), call=CALL)
    r = _build(sdist, tmp_path / "out", "wf-ext", python="3.12", test=spec)
    assert r.status == Outcome.CHECKED_NOT_RUN, r.message
    assert "no arm64 interpreter for Python 3.12" in r.message
    assert r.wheel is not None and "cp312-cp312-manylinux_2_17_aarch64" in r.tags


def test_linked_library_is_grafted_and_the_grafted_copy_is_loaded(tmp_path: Path) -> None:
    prefix = build_wfdemo(tmp_path / "prefix")
    sdist = make_linked_sdist(tmp_path / "sdist")
    want = expected_checksum(b"wheelfarm")
    spec = TestSpec(
        imports=("wf_linked",),
        call=(
            "from wf_linked import _native as n\n"
            f"assert n.checksum(b'wheelfarm') == {want}, n.checksum(b'wheelfarm')\n"
            "assert n.libversion() == 'wfdemo 1.0'\n"
            "maps = open('/proc/self/maps').read()\n"
            "assert 'wf_linked.libs/libwfdemo-' in maps, 'grafted copy not mapped'\n"
        ),
    )
    r = _build(sdist, tmp_path / "out", "wf-linked", test=spec, prefixes=[prefix])
    assert r.status == Outcome.TESTED, (r.message, r.log.read_text()[-3000:])
    assert len(r.grafted) == 1 and r.grafted[0].startswith("wf_linked.libs/libwfdemo-")
    # The Debian sysroot the test ran in has no libwfdemo: only the grafted copy could load.
    from builder.build.toolchain.host import cached_test_sysroot

    sysroot = cached_test_sysroot("3.11")
    assert sysroot is not None and not list(sysroot.rglob("libwfdemo*"))


def test_compile_error_reports_the_first_error_line(tmp_path: Path) -> None:
    sdist = make_sdist(
        tmp_path / "sdist", "wf-broken", c_extension=True, extra_c="\nthis_is_not_c(;\n"
    )
    r = _build(sdist, tmp_path / "out", "wf-broken", test=TestSpec(imports=("wf_broken",)))
    assert r.status == Outcome.FAILED and r.step == "build"
    assert "_native.c" in r.error and "error:" in r.error, r.error
    assert r.wheel is None and not list((tmp_path / "out").glob("*.whl"))
    assert r.log.exists() and r.error in r.log.read_text()


def test_pure_wheel_from_a_native_build_is_a_failure(tmp_path: Path) -> None:
    # setup.py swallows the failed extension build and makes a py3-none-any wheel, exit 0.
    sdist = make_sdist(
        tmp_path / "sdist",
        "wf-fallback",
        c_extension=True,
        pure_fallback=True,
        extra_c="\n#error this extension cannot build here\n",
    )
    r = _build(sdist, tmp_path / "out", "wf-fallback", test=TestSpec(imports=("wf_fallback",)))
    assert r.status == Outcome.FAILED and r.step == "verify", r.message
    assert "pure wheel" in r.error and "none-any" in r.error
    assert not list((tmp_path / "out").glob("*.whl"))


def test_smuggled_x86_64_library_is_a_failure(tmp_path: Path) -> None:
    # A prebuilt x86_64 shared object shipped as package data next to a correct aarch64 extension.
    so = tmp_path / "helper.so"
    c = tmp_path / "helper.c"
    c.write_text("int helper(void) { return 42; }\n")
    subprocess.run(
        [
            *zig_command(),
            "cc",
            "-target",
            "x86_64-linux-gnu.2.17",
            "-shared",
            "-O2",
            "-o",
            str(so),
            str(c),
        ],
        check=True,
        capture_output=True,
    )
    sdist = make_sdist(
        tmp_path / "sdist",
        "wf-smuggled",
        c_extension=True,
        package_data={"_helper.cpython-311-x86_64-linux-gnu.so": so.read_bytes()},
    )
    r = _build(sdist, tmp_path / "out", "wf-smuggled", test=TestSpec(imports=("wf_smuggled",)))
    assert r.status == Outcome.FAILED, r.message
    assert r.step in ("repair", "verify")
    assert "x86_64" in r.error, r.error
    assert not list((tmp_path / "out").glob("*.whl"))


def test_missing_interpreter_is_a_clear_error_naming_the_version(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-ext", c_extension=True)
    r = _build(sdist, tmp_path / "out", "wf-ext", python="3.29", test=TestSpec(imports=("wf_ext",)))
    assert r.status == Outcome.FAILED and r.step == "setup"
    assert "no host interpreter for Python 3.29" in r.error
    assert "pyenv install 3.29" in r.error


def test_musllinux_is_refused_with_a_reason(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-ext", c_extension=True)
    r = _build(sdist, tmp_path / "out", "wf-ext", target="musllinux_1_2_aarch64")
    assert r.status == Outcome.FAILED and r.step == "setup" and "musllinux" in r.error


def test_test_requires_and_test_command_run_under_qemu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pure test requirement from a local folder (pip download honours PIP_* variables).
    links = tmp_path / "links"
    make_wheel(links, "wf-helper", "0.1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    sdist = make_sdist(tmp_path / "sdist", "wf-ext", c_extension=True)
    spec = TestSpec(
        imports=("wf_ext", "wf_helper"),
        call=CALL,
        test_requires=("wf-helper==0.1",),
        test_command=(
            "test -f {project}/setup.py && python -c "
            "'import platform, wf_ext; print(\"cmd\", platform.machine(), wf_ext.triangle(3))'"
        ),
    )
    r = _build(sdist, tmp_path / "out", "wf-ext", test=spec)
    assert r.status == Outcome.TESTED, (r.message, r.log.read_text()[-2000:])
    assert "cmd aarch64 6" in r.log.read_text()


def test_too_new_glibc_symbols_fail_the_target_and_are_named(tmp_path: Path) -> None:
    from builder.build.toolchain.host import CrossToolchain
    from builder.recipes.recipe import BuildOptions

    # Compiled against glibc 2.28 (a recipe overriding CC), targeted at 2.17: getrandom is 2.25.
    cc = str(CrossToolchain("manylinux_2_28_aarch64").tool("cc"))
    sdist = make_sdist(
        tmp_path / "sdist",
        "wf-newglibc",
        c_extension=True,
        prelude_c=(
            "#include <sys/random.h>\n"
            "int wf_random(void) { char b[4]; return (int)getrandom(b, sizeof b, 0); }\n"
        ),
    )
    options = BuildOptions(environment={"CC": cc, "LDSHARED": f"{cc} -shared"})
    r = _build(sdist, tmp_path / "out", "wf-newglibc", options=options, run_test=False)
    assert r.status == Outcome.FAILED and r.step == "repair", r.message
    assert "does not meet manylinux_2_17_aarch64" in r.error
    assert "getrandom@GLIBC_2.25" in r.error
