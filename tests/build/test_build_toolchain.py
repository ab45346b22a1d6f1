from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from builder.build.backends.cross import build_requires, merge_env
from builder.build.toolchain.host import (
    CrossToolchain,
    PythonNotFound,
    ToolchainError,
    cross_env,
    ensure_host_packages,
    find_host_python,
    find_python,
    sysconfigdata,
    zig_triple,
)
from builder.build.toolchain.host import (
    test_suite as suite_for,
)
from builder.common.buildlog import first_error_line

EM_AARCH64 = 183


@pytest.mark.parametrize(
    ("tag", "triple"),
    [
        ("manylinux_2_17_aarch64", "aarch64-linux-gnu.2.17"),
        ("manylinux2014_aarch64", "aarch64-linux-gnu.2.17"),
        ("manylinux_2_28_aarch64", "aarch64-linux-gnu.2.28"),
        ("musllinux_1_2_aarch64", "aarch64-linux-musl"),
    ],
)
def test_triple_from_target_tag(tag: str, triple: str) -> None:
    assert zig_triple(tag) == triple


def test_macos_target_is_refused_by_the_cross_toolchain() -> None:
    with pytest.raises(ToolchainError, match="Linux targets only"):
        CrossToolchain("macosx_11_0_arm64")


def test_wrappers_compile_aarch64_against_the_glibc_floor(tmp_path: Path) -> None:
    tc = CrossToolchain("manylinux_2_17_aarch64")
    env = {**os.environ, **tc.env()}
    assert "-fno-sanitize=undefined" in env["CFLAGS"] and "-O2" in env["CFLAGS"]
    assert "CPATH" not in tc.env()
    for tool in ("cc", "c++", "ar", "ranlib", "strip"):
        assert os.access(tc.tool(tool), os.X_OK), tool
    src = tmp_path / "m.c"
    # pow is versioned GLIBC_2.29 in newer glibcs: the 2.17 floor must link the old version.
    src.write_text("#include <math.h>\ndouble f(double x) { return pow(x, 2.5); }\n")
    so = tmp_path / "m.so"
    # Debian's LDSHARED flag that zig rejects is dropped by the wrapper.
    cmd = [env["CC"], *env["CFLAGS"].split(), "-fPIC", "-shared", "-Wl,-Bsymbolic-functions"]
    subprocess.run([*cmd, "-o", so, src, "-lm"], env=env, check=True, capture_output=True)
    head = so.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and struct.unpack("<H", head[18:20])[0] == EM_AARCH64
    out = subprocess.run(
        ["aarch64-linux-gnu-objdump", "-T", so], capture_output=True, text=True, check=True
    ).stdout
    versions = set(re.findall(r"GLIBC_(\d+)\.(\d+)", out))
    assert versions and all((int(a), int(b)) <= (2, 17) for a, b in versions), versions
    assert "__ubsan" not in out
    subprocess.run([env["STRIP"], so], check=True)  # aarch64 strip reads it


def test_sysconfigdata_describes_the_target() -> None:
    python = find_python("3.11")
    tc = CrossToolchain("manylinux_2_17_aarch64")
    name, _folder = sysconfigdata(python, tc)
    assert name == "_sysconfigdata__linux_aarch64-linux-gnu"
    env = {**os.environ, **cross_env(python, "manylinux_2_17_aarch64")}
    code = (
        "import sysconfig as s; print(s.get_config_var('EXT_SUFFIX'), s.get_platform(),"
        " s.get_config_var('CC'), s.get_config_var('LDSHARED'))"
    )
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True)
    suffix, plat, cc, *ldshared = out.stdout.split()
    assert suffix == ".cpython-311-aarch64-linux-gnu.so"
    assert plat == "linux-aarch64"
    assert cc == str(tc.tool("cc")) and ldshared == [str(tc.tool("cc")), "-shared"]


def test_host_python_is_a_base_interpreter_with_headers() -> None:
    host = find_host_python("3.11")
    assert host.full_version.startswith("3.11.") and host.source in ("PATH", "pyenv", "uv")
    assert ".venv" not in str(host.executable)  # a venv's python is resolved to its base


def test_missing_python_names_the_version() -> None:
    with pytest.raises(PythonNotFound, match=r"no host interpreter for Python 3\.29.*pyenv"):
        find_python("3.29")


def test_test_suites() -> None:
    assert suite_for("3.11") == "bookworm" and suite_for("3.13") == "trixie"
    assert suite_for("3.9") == "bullseye" and suite_for("3.14") == suite_for("3.15") == "sid"
    assert suite_for("3.10") is None and suite_for("3.12") is None


def test_installed_host_packages_are_left_alone() -> None:
    assert ensure_host_packages(["dpkg"]) == []


def test_build_requires_and_env_merging(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["Cython >=3", "setuptools"]\n'
    )
    assert build_requires(tmp_path, ["numpy>=2"]) == (
        "Cython>=3",
        "numpy>=2",
        "setuptools",
        "wheel",
    )
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "setup.py").write_text("")
    assert build_requires(legacy) == ("setuptools>=40.8.0", "wheel")
    env = merge_env({"PATH": "/usr/bin", "CFLAGS": "-O2 -fno-sanitize=undefined"}, {"CFLAGS": "-g"})
    assert env["CFLAGS"] == "-O2 -g -fno-sanitize=undefined"


def test_first_error_line_skips_pip_noise() -> None:
    text = (
        "running build_ext\n"
        "  error: subprocess-exited-with-error\n"
        "x.c:3:5: error: use of undeclared identifier 'y'\n"
        "error: command '/cc' failed with exit code 1\n"
    )
    assert first_error_line(text) == "x.c:3:5: error: use of undeclared identifier 'y'"
    assert first_error_line("ModuleNotFoundError: No module named 'Cython'\n").startswith(
        "ModuleNotFoundError"
    )
    cython = "Error compiling Cython file:\n-----\nyaml/_yaml.pyx:12:4: undeclared name not builtin: nope\n"
    assert first_error_line(cython) == "yaml/_yaml.pyx:12:4: undeclared name not builtin: nope"
    assert first_error_line("all good\n") is None
