"""Real PyPI wheels, pinned by filename and sha256, pass the checker without a finding."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from builder.check import check_wheel

pytestmark = pytest.mark.e2e

# (requirement, pip --platform, --python-version, filename, sha256)
WHEELS = [
    (
        "markupsafe==3.0.2",
        "manylinux2014_aarch64",
        "3.11",
        "MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "2cb8438c3cbb25e220c2ab33bb226559e7afb3baec11c4f218ffa7308603c832",
    ),
    (
        "markupsafe==3.0.2",
        "macosx_10_9_universal2",
        "3.11",
        "MarkupSafe-3.0.2-cp311-cp311-macosx_10_9_universal2.whl",
        "9025b4018f3a1314059769c7bf15441064b2207cb3f065e6ea1e7359cb46db9d",
    ),
    (
        "markupsafe==3.0.2",
        "musllinux_1_2_aarch64",
        "3.11",
        "MarkupSafe-3.0.2-cp311-cp311-musllinux_1_2_aarch64.whl",
        "d8213e09c917a951de9d09ecee036d5c7d36cb6cb7dbaece4c71a60d79fb9798",
    ),
    (  # bundled libraries that need each other (pillow.libs), judged from an x86_64 host
        "pillow==11.0.0",
        "manylinux_2_28_aarch64",
        "3.11",
        "pillow-11.0.0-cp311-cp311-manylinux_2_28_aarch64.whl",
        "5ddbfd761ee00c12ee1be86c9c0683ecf5bb14c9772ddbd782085779a63dd55b",
    ),
    (
        "numpy==2.1.3",
        "manylinux2014_x86_64",
        "3.11",
        "numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "bc6f24b3d1ecc1eebfbf5d6051faa49af40b03be1aaa781ebdadcbc090b4539b",
    ),
    (
        "msgpack==1.1.0",
        "win_amd64",
        "3.12",
        "msgpack-1.1.0-cp312-cp312-win_amd64.whl",
        "115a7af8ee9e8cddc10f87636767857e7e3717b7a2e97379dc2054712693e90f",
    ),
]


@pytest.mark.parametrize(("req", "platform", "python", "filename", "sha256"), WHEELS)
def test_real_wheels_pass(tmp_path, req, platform, python, filename, sha256):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            platform,
            "--python-version",
            python,
            req,
            "-d",
            str(tmp_path),
        ],
        check=True,
    )
    wheel = tmp_path / filename
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == sha256
    report = check_wheel(wheel)
    assert report.findings == ()
    assert any(b.judged for b in report.binaries)  # the binaries were found and judged


# Apple-built macOS arm64 wheels: the load-time checks (signature, symbols, load paths) must pass them
# with evidence for every slice; pillow's libjpeg keeps an LC_RPATH /usr/local/lib (a warning).
MACOS_WHEELS = [
    (
        "pillow==11.0.0",
        "pillow-11.0.0-cp311-cp311-macosx_11_0_arm64.whl",
        "499c3a1b0d6fc8213519e193796eb1a86a1be4b1877d678b30f83fd979811d1a",
    ),
    (
        "pyyaml==6.0.2",
        "PyYAML-6.0.2-cp311-cp311-macosx_11_0_arm64.whl",
        "1e2120ef853f59c7419231f3bf4e7021f1b936f6ebd222406c3b60212205d2ee",
    ),
    (
        "markupsafe==3.0.2",
        "MarkupSafe-3.0.2-cp311-cp311-macosx_10_9_universal2.whl",
        "9025b4018f3a1314059769c7bf15441064b2207cb3f065e6ea1e7359cb46db9d",
    ),
]


@pytest.mark.parametrize(("req", "filename", "sha256"), MACOS_WHEELS)
def test_real_macos_wheels_pass_the_load_checks(tmp_path, req, filename, sha256):
    platform = filename.rsplit("-", 1)[1].removesuffix(".whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            platform,
            "--python-version",
            "3.11",
            req,
            "-d",
            str(tmp_path),
        ],
        check=True,
    )
    wheel = tmp_path / filename
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == sha256
    report = check_wheel(wheel)
    assert [f for f in report.findings if f.severity == "error"] == []
    slices = sum(len(b.slices) for b in report.binaries if b.format == "Mach-O")
    assert len(report.evidence) == slices > 0
    for line in report.evidence:
        if "(arm64)" in line:
            assert "page hashes" in line and "signature INVALID" not in line
        assert "(all found)" in line
