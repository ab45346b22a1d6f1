"""`recipe new --build`: a starting recipe built to learn its extension modules and native libraries."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.projects import make_sdist
from support.static_index import FileSpec, StaticIndexServer, write_static_index

from builder.build.explore import extension_modules, top_level_modules
from builder.cli import main
from builder.plan.starting_recipe import RecipeNewError, rewrite_recipe, with_findings
from builder.recipes.recipe import load_recipe

RECIPE = """\
[project]
name = "wf-x"
pythons = ["3.11"]
targets = ["manylinux_2_17_aarch64"]

[build]
backend = "cross"

[test]
imports = ["lib"]
"""


def test_findings_are_written_into_a_lint_clean_recipe(tmp_path: Path) -> None:
    path = tmp_path / "wf-x.toml"
    path.write_text(RECIPE)
    entry = {
        "name": "libxml2",
        "source": "debian:libxml2",
        "build-system": "autotools",
        "args": ["--without-python"],
    }
    rewrite_recipe(path, with_findings(path.read_text(), natives=[entry]))
    rewrite_recipe(path, with_findings(path.read_text(), imports=["wf_x", "wf_x._native"]))
    recipe = load_recipe(path)
    assert [(n.name, n.build_system, n.args) for n in recipe.native] == [
        ("libxml2", "autotools", ("--without-python",))
    ]
    assert recipe.test.imports == ("wf_x", "wf_x._native")
    with pytest.raises(RecipeNewError, match="does not lint"):
        rewrite_recipe(path, with_findings(path.read_text(), natives=[{"name": "x"}]))
    assert load_recipe(path).test.imports == ("wf_x", "wf_x._native")  # left as it was


def test_modules_of_a_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "wf_x-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in [
            "wf_x/__init__.py",
            "wf_x/_native.cpython-311-aarch64-linux-gnu.so",
            "wf_x/sub/_speed.abi3.so",
            "wf_x.libs/libwfdemo-1a2b3c4d.so.1",
            "_top.cpython-311-aarch64-linux-gnu.so",
            "helper.py",
            "wf_x-1.0.dist-info/RECORD",
        ]:
            zf.writestr(name, b"")
    assert extension_modules(wheel) == ["_top", "wf_x._native", "wf_x.sub._speed"]
    assert top_level_modules(wheel) == ["_top", "helper", "wf_x"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StaticIndexServer]:
    # The package lives under src/, with a misleading top-level `lib/` folder of scripts.
    sdist = make_sdist(tmp_path / "sdist", "wf-explore", "1.0.0", c_extension=True)
    root = tmp_path / "index"
    write_static_index(root, {"wf-explore": [FileSpec(sdist.name, sdist.read_bytes())]})
    with StaticIndexServer(root) as srv:
        yield srv


@pytest.mark.slow
def test_recipe_new_build_tests_every_extension_module(
    server: StaticIndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    args = [
        "recipe",
        "new",
        "wf-explore",
        "--index",
        server.url,
        "--dir",
        str(tmp_path),
        "--python",
        "3.11",
        "--build",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "extension module tested: wf_explore._native" in res.output
    assert "tested" in res.output.splitlines()[-1]
    recipe = load_recipe(tmp_path / "wf-explore.toml")
    assert recipe.test.imports == ("wf_explore", "wf_explore._native")


# As python-prctl's setup.py does: look for the header itself and fail in its own words, naming no
# file a log reader could look up (only in the cross build: the sdist itself is made on the host).
NEEDS_WFCAP = (
    "import os, sys\n"
    "if os.environ.get('_PYTHON_HOST_PLATFORM') and not os.path.exists('/usr/include/sys/wfcap.h'):\n"
    "    sys.exit('You need to install libwfcap development headers to build this module')\n"
)


@pytest.mark.slow
def test_a_library_named_only_by_the_sdists_setup_py_is_found_in_debian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.fake_archive import write_archive

    import builder.build.explore as explore
    from builder.build.natives.resolve import missing_from_log
    from builder.build.toolchain.debian import PrivateApt

    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    sdist = make_sdist(
        tmp_path / "sdist", "wf-needs-cap", c_extension=True, setup_prelude=NEEDS_WFCAP
    )
    root = tmp_path / "index"
    write_static_index(root, {"wf-needs-cap": [FileSpec(sdist.name, sdist.read_bytes())]})
    mirror = write_archive(
        tmp_path / "archive",
        {
            "libwfcap-dev": (
                "wfcap",
                ["usr/include/sys/wfcap.h", "usr/lib/aarch64-linux-gnu/libwfcap.so"],
            )
        },
    )
    archive = PrivateApt(
        "bookworm", "arm64", root=tmp_path / "apt", mirror=mirror, contents=True, trusted=True
    )
    # The first build is real; the next (with the found library, which this fake archive cannot
    # build) gives the first's result again, so the exploration ends there.
    builds: list = []

    def build_once(job, **kwargs):
        if not builds:
            builds.append(real_build_job(job, **kwargs))
        return builds[0]

    real_build_job = explore.build_job
    monkeypatch.setattr(explore, "build_job", build_once)
    path = tmp_path / "wf-needs-cap.toml"
    path.write_text(RECIPE.replace("wf-x", "wf-needs-cap"))
    said: list[str] = []
    with StaticIndexServer(root) as server:
        found = explore.explore_recipe(
            path, archive=archive, index=server.url, max_rounds=1, say=said.append
        )
    first = builds[0]
    assert first.step == "build" and "libwfcap development headers" in first.log.read_text()
    assert missing_from_log(first.log.read_text()) == []  # the log names nothing
    assert found.natives == [
        {"name": "wfcap", "source": "debian:wfcap", "build-system": "autotools"}
    ]
    assert [n.name for n in load_recipe(path).native] == ["wfcap"]
    named = next(m for m in said if "the sdist names" in m)
    assert "sys/wfcap.h (setup.py:3)" in named, said
