"""confluent-kafka 2.0.2: our aarch64 wheel against PyPI's x86_64 wheel of the same release.

`wheelfarm build` builds it from the PyPI sdist (pinned by sha256) with OpenSSL, zlib, zstd and curl
from Debian's sources, and its parity gate compares the result with PyPI's manylinux x86_64 wheel
(pinned below by sha256): inventory, and the recipe's probe run natively with PyPI's wheel and under
qemu-aarch64 with ours. Run with `.venv/bin/pytest -m e2e tests/e2e/test_parity_e2e.py`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from builder.common.paths import cache_dir

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "confluent-kafka.toml"
SDIST_SHA256 = "3b342ea4226ed105ca8bc035b0877e4dc2f115ffda74e3a350f363683356515b"
PYPI_WHEEL = "confluent_kafka-2.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
PYPI_SHA256 = "69f2582420b5c010b64812c0ff1f391d32fbca2f5783f00b19e9f296bbf70202"
FEATURES = (
    "builtin.features gzip,snappy,ssl,sasl,regex,lz4,sasl_plain,sasl_scram,plugins,zstd,"
    "sasl_oauthbearer,http,oidc"
)


@pytest.mark.e2e
@pytest.mark.timeout(3600)
@pytest.mark.slow
def test_confluent_kafka_has_parity_with_pypis_x86_64_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    proc = subprocess.run(
        ["wheelfarm", "build", str(RECIPE), "--python", "3.11", "--target",
         "manylinux_2_17_aarch64", "--out", str(tmp_path / "out"), "--json"],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert proc.stdout, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["status"] == "tested", result["message"]
    assert result["sdist_sha256"] == SDIST_SHA256
    assert result["parity"].startswith(f"matched {PYPI_WHEEL}: "), result["parity"]
    grafted = {Path(g).name.split("-")[0] for g in result["grafted"]}
    assert {"librdkafka", "libssl", "libcrypto", "libz", "libzstd"} <= grafted

    check = subprocess.run(
        ["wheelfarm", "check", "--parity", "--recipe", str(RECIPE), "--json", result["wheel"]],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    (report,) = json.loads(check.stdout)["parity"]
    assert report["upstream"] == PYPI_WHEEL and report["status"] == "matched"
    upstream = cache_dir() / "files" / PYPI_SHA256 / PYPI_WHEEL  # what the index client fetched
    assert hashlib.sha256(upstream.read_bytes()).hexdigest() == PYPI_SHA256
    assert report["probe_run"]
    ours, theirs = report["probe"]["ours"], report["probe"]["upstream"]
    for line in (
        "security.SSL ok",
        "security.SASL_SSL.PLAIN ok",
        "security.SASL_SSL.SCRAM-SHA-512 ok",
        "security.SASL_SSL.OAUTHBEARER ok",
        "compression.gzip ok",
        "compression.zstd ok",
        "compression.lz4 ok",
        "compression.snappy ok",
    ):
        assert line in ours and line in theirs, line
    # The two differences the recipe accepts, with its reasons: libcurl (http, oidc) is left out.
    assert FEATURES in theirs

    def features(lines: list[str]) -> set[str]:
        line = next(x for x in lines if x.startswith("builtin.features "))
        return set(line.split()[1].split(","))

    # librdkafka's CMake names sasl_gssapi once SASL is on; GSSAPI itself is refused by both wheels.
    assert features(ours) == features(theirs) - {"http", "oidc"} | {"sasl_gssapi"}
    gssapi = next(x for x in theirs if x.startswith("security.SASL_SSL.GSSAPI "))
    assert "refused" in gssapi and gssapi in ours
    accepted = {
        f["message"].split(":")[0] for f in report["findings"] if f["rule"].startswith("WF026")
    }
    assert len(accepted) == 2, report["findings"]
    probe_lines = report["compared"].pop("probe lines")
    assert report["matched"].pop("probe lines") == probe_lines - 2, report
    assert report["matched"] == report["compared"], report  # the whole inventory
    assert not [f for f in report["findings"] if f["severity"] == "error"]
