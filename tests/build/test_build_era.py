"""Older projects' build scripts: requirements their era needs are read from the sdist before
building (builder/common/build_era_rules.toml), so a setup.py that imports pkg_resources builds."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from support.projects import make_sdist

from builder.build.pipeline import build_sdist
from builder.common.outcome import Outcome
from builder.common.sdist import build_requirements, merge_requirements
from builder.recipes.recipe import BuildOptions, TestSpec


def _with_pkg_resources(sdist: Path) -> Path:
    """The sdist with `import pkg_resources` at the top of its setup.py (made with the test venv's
    newer setuptools, which could not run that setup.py itself)."""
    out = sdist.with_name("era-" + sdist.name)
    with tarfile.open(sdist) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith("/setup.py") and data is not None:
                data = (
                    b"import pkg_resources\npkg_resources.get_distribution('setuptools')\n" + data
                )
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_requirements_of_one_project_are_intersected() -> None:
    assert merge_requirements(["setuptools>=40.8.0", "setuptools<82", "wheel"]) == [
        "setuptools<82,>=40.8.0",
        "wheel",
    ]
    assert merge_requirements(["Cython>=3", "cython<3.1", "numpy; python_version<'3.12'"]) == [
        "Cython<3.1,>=3",
        'numpy; python_version < "3.12"',
    ]


@pytest.mark.parametrize(
    ("setup_py", "expected"),
    [
        ("from setuptools import setup\nsetup()\n", ["setuptools>=40.8.0"]),
        (
            "import pkg_resources\nfrom setuptools import setup\nsetup()\n",
            ["setuptools<82,>=40.8.0"],
        ),
        ("from pkg_resources import parse_version\n", ["setuptools<82,>=40.8.0"]),
        ("# pkg_resources is not used here\n", ["setuptools>=40.8.0"]),
    ],
)
def test_a_setup_py_importing_pkg_resources_gets_a_setuptools_that_has_it(
    tmp_path: Path, setup_py: str, expected: list[str]
) -> None:
    (tmp_path / "setup.py").write_text(setup_py)
    assert build_requirements(tmp_path) == expected


@pytest.mark.slow
def test_a_project_importing_pkg_resources_is_cross_built_and_tested(tmp_path: Path) -> None:
    sdist = _with_pkg_resources(make_sdist(tmp_path / "sdist", "wf-era", c_extension=True))
    r = build_sdist(
        sdist,
        project="wf-era",
        version="1.0.0",
        python="3.11",
        target="manylinux_2_17_aarch64",
        options=BuildOptions(backend="cross"),
        test=TestSpec(
            imports=("wf_era._native",), call="import wf_era; assert wf_era.triangle(4) == 10"
        ),
        out_dir=tmp_path / "out",
        log_dir=tmp_path / "logs",
    )
    assert r.status == Outcome.TESTED, (r.message, r.log.read_text()[-3000:])


def test_a_legacy_projects_setup_requires_are_build_requirements(tmp_path: Path) -> None:
    """ssdeep's setup.py: setup_requires=["cffi>=0.8.6", "six"], no [build-system] table."""
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup\n"
        "SETUP_REQUIRES = ['cffi>=0.8.6', 'six']\n"
        "setup(name='x', setup_requires=SETUP_REQUIRES, cffi_modules=['x/build.py:ffi'])\n"
    )
    assert build_requirements(tmp_path) == ["cffi>=0.8.6", "setuptools>=40.8.0", "six"]
    (tmp_path / "setup.py").write_text(  # ssdeep 3.4's own form
        "import sys\nfrom setuptools import setup\n"
        "if sys.version_info < (2, 7):\n    setup_requires = ['pytest-runner<2.4']\n"
        "else:\n    setup_requires = ['pytest-runner']\n"
        "setup(name='x', setup_requires=['cffi>=0.8.6', 'six>=1.4.1'] + setup_requires)\n"
    )
    assert build_requirements(tmp_path) == ["cffi>=0.8.6", "setuptools>=40.8.0", "six>=1.4.1"]
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "setup.cfg").write_text("[options]\nsetup_requires =\n    cython<3\n    numpy\n")
    assert build_requirements(tmp_path) == ["cython<3", "numpy", "setuptools>=40.8.0"]
    # a [build-system] table is the project's own word: setup_requires is not read then
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools", "wheel"]\n')
    assert build_requirements(tmp_path) == ["setuptools", "wheel"]
