from __future__ import annotations

import pytest
from packaging.tags import parse_tag

from builder.common.targets import (
    TargetError,
    cibw_identifier,
    parse_python,
    parse_target,
    supported_tags,
)
from builder.recipes import selectors


def installs(wheel_tag: str, python: str, target: str) -> bool:
    return bool(parse_tag(wheel_tag) & supported_tags(python, target))


@pytest.mark.parametrize(
    ("wheel_tag", "python", "target", "ok"),
    [
        ("cp311-cp311-manylinux_2_17_aarch64", "3.11", "manylinux_2_28_aarch64", True),
        ("cp311-cp311-manylinux2014_aarch64", "3.11", "manylinux_2_28_aarch64", True),
        ("cp311-cp311-manylinux_2_28_aarch64", "3.11", "manylinux_2_28_aarch64", True),
        ("cp311-cp311-manylinux_2_31_aarch64", "3.11", "manylinux_2_28_aarch64", False),
        ("cp311-cp311-manylinux_2_17_x86_64", "3.11", "manylinux_2_28_aarch64", False),
        ("cp311-cp311-manylinux_2_17_aarch64", "3.11", "manylinux2014_aarch64", True),
        ("cp311-cp311-manylinux_2_17_aarch64", "3.12", "manylinux_2_28_aarch64", False),
        ("cp38-abi3-manylinux_2_17_aarch64", "3.12", "manylinux_2_28_aarch64", True),
        ("cp313-abi3-manylinux_2_17_aarch64", "3.12", "manylinux_2_28_aarch64", False),
        ("cp38-abi3-manylinux_2_17_aarch64", "3.13t", "manylinux_2_28_aarch64", False),
        ("py3-none-any", "3.13t", "musllinux_1_2_aarch64", True),
        ("py2.py3-none-any", "3.11", "macosx_11_0_arm64", True),
        ("cp311-cp311-musllinux_1_1_aarch64", "3.11", "musllinux_1_2_aarch64", True),
        ("cp311-cp311-musllinux_1_1_aarch64", "3.11", "manylinux_2_28_aarch64", False),
        ("cp311-cp311-manylinux_2_17_aarch64", "3.11", "musllinux_1_2_aarch64", False),
        ("cp311-cp311-macosx_10_9_universal2", "3.11", "macosx_11_0_arm64", True),
        ("cp311-cp311-macosx_11_0_arm64", "3.11", "macosx_11_0_arm64", True),
        ("cp311-cp311-macosx_12_0_arm64", "3.11", "macosx_11_0_arm64", False),
        ("cp311-cp311-macosx_10_9_x86_64", "3.11", "macosx_11_0_arm64", False),
        ("cp311-cp311-linux_aarch64", "3.11", "manylinux_2_28_aarch64", False),
        ("cp313-cp313t-manylinux_2_17_aarch64", "3.13t", "manylinux_2_28_aarch64", True),
        ("cp313-cp313-manylinux_2_17_aarch64", "3.13t", "manylinux_2_28_aarch64", False),
    ],
)
def test_compatibility_follows_packaging_tags(
    wheel_tag: str, python: str, target: str, ok: bool
) -> None:
    assert installs(wheel_tag, python, target) is ok


@pytest.mark.parametrize(
    "tag",
    [
        "manylinux_2_17_aarch64",
        "manylinux_2_28_aarch64",
        "manylinux2014_aarch64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
        "musllinux_1_2_aarch64",
        "macosx_11_0_arm64",
        "macosx_14_0_arm64",
        "macosx_10_9_universal2",
        "macosx_11_0_universal2",
    ],
)
def test_accepted_targets(tag: str) -> None:
    assert parse_target(tag).tag == tag


@pytest.mark.parametrize(
    "tag",
    [
        "linux_aarch64",
        "any",
        "manylinux_2_17_arm64",
        "manylinux_3_17_aarch64",
        "manylinux1_aarch64",
        "musllinux_2_0_aarch64",
        "macosx_11_3_arm64",
        "macosx_10_15_arm64",
        "macosx_10_4_x86_64",
        "macosx_11_0_aarch64",
        "win_arm64",
        "manylinux_2_17_aarch64 ",
    ],
)
def test_rejected_targets(tag: str) -> None:
    with pytest.raises(TargetError):
        parse_target(tag)


def test_pythons_and_identifiers() -> None:
    assert parse_python("3.11") == (3, 11, False) and parse_python("3.13t") == (3, 13, True)
    for bad in ["3", "3.12.1", "2.7", "3.5", "3.12t", "cp311", "3.99"]:
        with pytest.raises(TargetError):
            parse_python(bad)
    assert cibw_identifier("3.11", "manylinux_2_28_aarch64") == "cp311-manylinux_aarch64"
    assert cibw_identifier("3.13t", "macosx_11_0_arm64") == "cp313t-macosx_arm64"
    assert cibw_identifier("3.12", "manylinux2014_aarch64") == "cp312-manylinux_aarch64"


def test_selectors_follow_cibuildwheel() -> None:
    assert selectors.expand_braces("{cp311,cp312}-{a,b{c,d}}") == [
        "cp311-a",
        "cp311-bc",
        "cp311-bd",
        "cp312-a",
        "cp312-bc",
        "cp312-bd",
    ]
    assert selectors.selected((), (), "cp311-manylinux_aarch64")
    assert selectors.selected(("cp3?-*", "cp311-*"), ("*-musllinux_*",), "cp311-manylinux_aarch64")
    assert not selectors.selected(("cp312-*",), (), "cp311-manylinux_aarch64")
    assert not selectors.selected((), ("*aarch64",), "cp311-manylinux_aarch64")
    for good in ["*", "cp3*", "pp*", "*-musllinux_*", "cp31[0-2]-*", "{cp311,cp312}-*"]:
        selectors.validate_pattern(good)
    for bad in ["cp311-foo", "py3*", "cp311 ", "{cp311", "cp311}", "cp311-manylinux_aarch64;rm"]:
        with pytest.raises(selectors.SelectorError):
            selectors.validate_pattern(bad)
