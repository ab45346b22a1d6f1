"""A real PyPI sdist (pinned by version and sha256) through the whole cross pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.build.pipeline import build_url
from builder.common.outcome import Outcome
from builder.recipes.recipe import TestSpec

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MARKUPSAFE = (
    "https://files.pythonhosted.org/packages/38/9b/"
    "e422a865e1d5d57d0e509b4e0bf1c1a70a7f6382c29a5aa428df994c8bc8/markupsafe-3.0.4.tar.gz"
)
MARKUPSAFE_SHA256 = "2e9ad7dd851bf45fab9f75cbff4cb493fee9979e8d8c7c9c3ee119022518edd6"


def test_markupsafe_speedups_are_cross_built_and_used_under_qemu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    spec = TestSpec(
        imports=("markupsafe._speedups",),
        call=(
            "import markupsafe, markupsafe._speedups as s\n"
            "assert s.__file__.endswith('.cpython-311-aarch64-linux-gnu.so'), s.__file__\n"
            "assert markupsafe.escape('<a>') == '&lt;a&gt;'\n"
        ),
    )
    r = build_url(
        MARKUPSAFE,
        MARKUPSAFE_SHA256,
        project="markupsafe",
        version="3.0.4",
        python="3.11",
        target="manylinux_2_17_aarch64",
        test=spec,
        out_dir=tmp_path / "out",
    )
    assert r.status == Outcome.TESTED, (r.message, r.log)
    assert "cp311-cp311-manylinux_2_17_aarch64" in r.tags


CRCMOD_RECIPE = """
[project]
name = "crcmod"
versions = "==1.7"
pythons = ["3.11"]
targets = ["manylinux_2_17_aarch64"]

[test]
imports = ["crcmod._crcfunext"]
call = "import crcmod; assert crcmod.mkCrcFun(0x11021, 0, False, 0)(b'123456789') == 0x31C3"
"""
CRCMOD_SHA256 = "dc7051a0db5f2bd48665a990d3ec1cc305a466a77358ca4492826f41f283601e"


def test_wheelfarm_build_recipe_finds_the_sdist_upstream(tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    recipe = tmp_path / "crcmod.toml"
    recipe.write_text(CRCMOD_RECIPE)
    env = {**os.environ, "WHEELFARM_DATA": str(tmp_path / "data")}
    proc = subprocess.run(
        ["wheelfarm", "build", str(recipe), "--out", str(tmp_path / "w"), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (r,) = json.loads(proc.stdout)["results"]
    assert r["status"] == "tested" and r["version"] == "1.7"
    assert r["sdist_sha256"] == CRCMOD_SHA256
