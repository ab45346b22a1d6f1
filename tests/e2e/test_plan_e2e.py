"""Ask the real PyPI about an old release whose file list does not change (confluent-kafka 2.0.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.common.httpcache import HttpCache
from builder.common.upstream import IndexClient
from builder.plan.planner import BUILD, UPSTREAM, load_recipes, plan

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SDIST_SHA256 = "3b342ea4226ed105ca8bc035b0877e4dc2f115ffda74e3a350f363683356515b"


def test_confluent_kafka_2_0_2_on_pypi(tmp_path: Path) -> None:
    recipes, errors = load_recipes([REPO / "recipes" / "confluent-kafka.toml"])
    assert not errors
    with IndexClient(cache=HttpCache(tmp_path)) as pypi:
        result = plan(recipes, pypi, targets=None)
        assert not result.errors
        jobs = result.jobs
        assert {(j.python, j.target, j.reason) for j in jobs} == {
            (
                "3.11",
                "manylinux_2_17_aarch64",
                "no wheel for this platform (manylinux_2_17_aarch64)",
            ),
            ("3.12", "manylinux_2_17_aarch64", "no wheel for this platform or Python"),
        }
        assert {(j.sdist_filename, j.sdist_sha256) for j in jobs} == {
            ("confluent-kafka-2.0.2.tar.gz", SDIST_SHA256)
        }
        page = pypi.project("confluent-kafka")
    mac = [
        f
        for f in page.files
        if f.filename == "confluent_kafka-2.0.2-cp311-cp311-macosx_11_0_arm64.whl"
    ]
    assert len(mac) == 1 and str(mac[0].version) == "2.0.2"


def test_macos_arm64_wheel_is_found_upstream(tmp_path: Path) -> None:
    recipes, _ = load_recipes([REPO / "recipes" / "confluent-kafka.toml"])
    import dataclasses

    recipe = dataclasses.replace(recipes[0], targets=("macosx_11_0_arm64",))
    with IndexClient(cache=HttpCache(tmp_path)) as pypi:
        result = plan([recipe], pypi)
    by_py = {d.python: d for d in result.decisions}
    assert by_py["3.11"].status == UPSTREAM
    assert by_py["3.11"].file == "confluent_kafka-2.0.2-cp311-cp311-macosx_11_0_arm64.whl"
    assert by_py["3.12"].status == BUILD
