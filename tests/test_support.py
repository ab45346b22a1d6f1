from __future__ import annotations

import zipfile
from pathlib import Path

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from support.projects import make_sdist, make_wheel


def test_fixture_projects_build(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "Tiny-Native", "1.2.3", c_extension=True)
    name, version = parse_sdist_filename(sdist.name)
    assert (name, str(version)) == ("tiny-native", "1.2.3")
    wheel = make_wheel(tmp_path, "tiny-pure", "0.1")
    name, version, _, tags = parse_wheel_filename(wheel.name)
    assert (name, str(version)) == ("tiny-pure", "0.1")
    assert {t.platform for t in tags} == {"any"}
    with zipfile.ZipFile(wheel) as zf:
        assert "tiny_pure/__init__.py" in zf.namelist()


def test_sdist_name_is_pep625(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "Tiny-Native", "1.2.3", c_extension=True)
    assert sdist.name == "tiny_native-1.2.3.tar.gz"
