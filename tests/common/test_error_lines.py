"""The first real error line and the failure class of real logs saved in tests/data/logs/.

Each log was produced on this machine by the real tool (autoconf's configure, CMake, meson from
PyPI, pip, and wheelfarm's cross pipeline running pip + setuptools + zig cc); the names say what
went wrong. A new log that is picked or classed wrong belongs here with its expected answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.common.buildlog import first_error_line
from builder.common.classify import FailureClass, classify

LOGS = Path(__file__).parent.parent / "data" / "logs"

CASES = {
    "autoconf-missing-header.log": (
        "configure: error: zlib.h not found: install zlib development files",
        FailureClass.MISSING_HEADER,
        "zlib.h",
    ),
    "cmake-find-package.log": (
        "Could NOT find ZLIB (missing: ZLIB_LIBRARY ZLIB_INCLUDE_DIR)",
        FailureClass.MISSING_LIBRARY,
        "ZLIB",
    ),
    "meson-dependency-not-found.log": (
        'meson.build:2:4: ERROR: Dependency "wfnotthere" not found (tried pkg-config)',
        FailureClass.MISSING_LIBRARY,
        "wfnotthere",
    ),
    "pip-no-matching-distribution.log": (
        "ERROR: Could not find a version that satisfies the requirement ninja==0.0.0.1",
        FailureClass.UNKNOWN,
        None,
    ),
    "setuptools-longintrepr.log": (
        "wf_longintrepr/_native.c:4:10: fatal error: 'longintrepr.h' file not found",
        FailureClass.PYTHON_INCOMPATIBLE,  # not a system library to install
        "longintrepr.h",
    ),
    "setuptools-py-type-lvalue.log": (
        "wf_py_type_lvalue/_native.c:4:63: error: expression is not assignable",
        FailureClass.PYTHON_INCOMPATIBLE,
        None,
    ),
    "setuptools-missing-system-header.log": (
        "wf_missing_system_header/_native.c:4:10: fatal error: 'libxml/parser.h' file not found",
        FailureClass.MISSING_HEADER,
        "libxml/parser.h",
    ),
    # krb5's configure.ac is in src/: autoreconf at the top of the tree says so
    "autoreconf-no-configure-ac.log": (
        "autoreconf: error: 'configure.ac' is required",
        FailureClass.UNKNOWN,
        None,
    ),
    # a Debian patch left configure older than its inputs: make reran automake's `missing`
    "make-reruns-missing-aclocal.log": (
        "/root/.cache/wheelfarm/prefix/manylinux_2_17_aarch64/.fuse-f3b071885d4f804e.build.mu6ybvf9/"
        "src/fuse-2.9.9/missing: line 81: aclocal-1.15: command not found",
        FailureClass.UNKNOWN,
        None,
    ),
}


def test_every_saved_log_has_a_case() -> None:
    assert sorted(p.name for p in LOGS.glob("*.log")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_error_line_of_real_logs(name: str) -> None:
    line, _cls, _what = CASES[name]
    got = first_error_line((LOGS / name).read_text())
    assert got is not None and got.startswith(line), got


@pytest.mark.parametrize("name", sorted(CASES))
def test_failure_class_of_real_logs(name: str) -> None:
    _line, cls, what = CASES[name]
    f = classify((LOGS / name).read_text())
    assert f.cls == cls, f
    if what is not None:
        assert f.name == what, f


def test_wrapper_summaries_are_never_the_error() -> None:
    text = (
        "  error: subprocess-exited-with-error\n"
        "  ERROR: Failed building wheel for wf-x\n"
        "ERROR: Failed to build one or more wheels\n"
        "CMake Error at CMakeLists.txt:3 (find_package):\n"
        '  By not providing "FindFoo.cmake" in CMAKE_MODULE_PATH this project asked\n'
        "\n"
        "Call Stack (most recent call first):\n"
        "  CMakeLists.txt:3 (find_package)\n"
    )
    assert first_error_line(text) == (
        'By not providing "FindFoo.cmake" in CMAKE_MODULE_PATH this project asked'
    )
    assert first_error_line("ERROR: Failed building wheel for wf-x\n") is None
