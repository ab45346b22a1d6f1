"""Fallback backends: the primary backend's error comes first; no fallback when the error is in the
project's own source (another backend would fail the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import make_sdist

from builder.build.backends.emulated import platform_args
from builder.build.pipeline import _worth_falling_back, build_sdist
from builder.common.buildlog import BuildError
from builder.common.classify import classify_file
from builder.common.outcome import Outcome
from builder.recipes.recipe import BuildOptions, TestSpec

TARGET = "manylinux_2_17_aarch64"


def test_which_errors_are_worth_another_backend() -> None:
    def err(summary: str, step: str = "build") -> BuildError:
        return BuildError(step, summary)

    assert not _worth_falling_back(err("pkg/_native.c:52:1: error: expected ';'"))
    # C that only clang refuses: gcc (the emulated backend's) builds it
    assert _worth_falling_back(err("src/g.c:87:4: error: function definition is not allowed here"))
    assert _worth_falling_back(
        err("src/g.c:9:3: error: call to undeclared function 'helper'; ISO C99 and later do not")
    )
    assert not _worth_falling_back(  # a CPython API that is gone: gcc fails as well
        err("src/g.c:9:3: error: call to undeclared function '_PyLong_AsInt'; ISO C99 and later")
    )
    assert not _worth_falling_back(err("x/_m.c:4:10: fatal error: 'longintrepr.h' file not found"))
    assert _worth_falling_back(err("x/_m.c:4:10: fatal error: 'zlib.h' file not found"))
    assert _worth_falling_back(err("/usr/include/x.h:1:2: error: from a system header"))
    assert _worth_falling_back(err("RuntimeError: the build ran a program it compiled"))
    assert _worth_falling_back(err("pkg/_native.c:52:1: error: x", step="setup"))


def test_emulated_downloads_accept_every_manylinux_tag_of_the_rootfs_glibc() -> None:
    args = platform_args(2, 36)
    tags = args[1::2]
    assert args[0::2] == ["--platform"] * len(tags)
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags and "manylinux_2_16_aarch64" not in tags


def _build(tmp_path: Path, name: str, fallback: tuple[str, ...], **kw) -> object:
    sdist = make_sdist(tmp_path / "sdist", name, c_extension=True, **kw)
    return build_sdist(
        sdist,
        project=name,
        version="1.0.0",
        python="3.11",
        target=TARGET,
        options=BuildOptions(backend="cross", fallback=fallback),
        test=TestSpec(imports=(name.replace("-", "_"),)),
        out_dir=tmp_path / "out",
        log_dir=tmp_path / "logs",
    )


@pytest.mark.slow
def test_an_error_in_the_projects_own_source_is_not_retried_elsewhere(tmp_path: Path) -> None:
    r = _build(tmp_path, "wf-own", ("nosuch",), extra_c="\nthis_is_not_c(;\n")
    assert r.status == Outcome.FAILED and "_native.c" in r.error and "nosuch" not in r.error
    assert "no fallback: the error is in the project's own source" in r.log.read_text()


@pytest.mark.slow
def test_the_primary_error_is_shown_first_then_the_fallbacks(tmp_path: Path) -> None:
    r = _build(tmp_path, "wf-hdr", ("nosuch",), prelude_c="#include <wf_not_here.h>\n")
    assert r.status == Outcome.FAILED and r.step == "build", r.message
    assert r.error.startswith("cross: ") and "'wf_not_here.h' file not found" in r.error
    assert "; then nosuch: setup: " in r.error


def test_a_release_that_cannot_build_for_the_python_fails_before_building(tmp_path: Path) -> None:
    r = _build(tmp_path, "wf-old", ("emulated",), extra_c='\n#include "longintrepr.h"\n')
    assert r.status == Outcome.FAILED and r.step == "compat"
    assert r.error.startswith("this release cannot build for CPython 3.11: its C includes")
    assert r.log.read_text().count("====") == 1  # the result only: no backend step ran
    failure = classify_file(r.log)
    assert failure.cls == "python-incompatible" and not failure.transient
