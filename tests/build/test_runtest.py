"""The site a wheel's test runs with under qemu: the wheel and what pip would install with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import make_dummy_wheel
from support.static_index import FileSpec, StaticIndexServer, write_static_index
from support.wheels import assemble_wheel

from builder.build.runtest import prepare_site, wheel_requires
from builder.common.buildlog import BuildLog

REQUIRES = [
    "wf-dep>=1.0",
    'wf-arm; platform_machine == "aarch64"',
    'wf-intel; platform_machine == "x86_64"',
    'wf-windows; sys_platform == "win32"',
    'wf-extra; extra == "speedups"',
    'wf-old; python_version < "3.8"',
]


def main_wheel(out: Path) -> Path:
    files = {"wfmain/__init__.py": b"import wf_dep\n"}
    tag = "cp311-cp311-manylinux_2_17_aarch64"
    return assemble_wheel(out, tag, files, name="wfmain", requires_dist=REQUIRES)


def test_the_requirements_that_apply_where_the_wheel_runs(tmp_path: Path) -> None:
    """Markers are the target's (Linux aarch64, CPython 3.11, no extras), not the build machine's;
    what is kept goes to pip without its marker, which pip would judge by the build machine."""
    wheel = main_wheel(tmp_path)
    assert wheel_requires(wheel, "3.11", "manylinux2014_aarch64") == ["wf-dep>=1.0", "wf-arm"]
    assert wheel_requires(wheel, "3.11", "manylinux_2_17_x86_64") == ["wf-dep>=1.0", "wf-intel"]


def test_the_test_site_holds_the_wheels_own_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel whose Python imports its dependencies (python-ldap imports pyasn1) is tested with
    them, as `pip install` of the wheel (and cibuildwheel's test) would have them: downloaded by
    pip for the target from the configured index (here a local one)."""
    deps = [make_dummy_wheel(tmp_path / "deps", n, "1.0") for n in ("wf-dep", "wf-arm")]
    write_static_index(
        tmp_path / "index",
        {w.name.split("-")[0].replace("_", "-"): [FileSpec(w.name, w.read_bytes())] for w in deps},
    )
    with StaticIndexServer(tmp_path / "index") as index:
        monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
        monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
        log = BuildLog(tmp_path / "test.log")
        site = prepare_site(
            main_wheel(tmp_path), "3.11", [], ("manylinux2014_aarch64",), tmp_path / "w", log
        )
    assert (site / "wfmain" / "__init__.py").is_file()
    assert (site / "wf_dep" / "__init__.py").is_file()
    assert (site / "wf_arm" / "__init__.py").is_file()
    assert not (site / "wf_intel").exists()
