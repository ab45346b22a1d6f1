"""The long tail: real sdist-only projects with native libraries (no aarch64 wheel for CPython 3.11 on
PyPI), built from the starting recipe `wheelfarm recipe new --build` writes, with no hand edits, then
each given a real call under qemu-aarch64. Pinned by version and sha256.

Run with `.venv/bin/pytest -m e2e tests/e2e/test_longtail_e2e.py`. Slow: the native libraries are
built from Debian's source for glibc 2.17 on first use.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder.build.runtest import run_wheel_test
from builder.build.toolchain.host import test_sysroot
from builder.common.buildlog import BuildLog
from builder.recipes.recipe import TestSpec

TARGET = "manylinux_2_17_aarch64"

# project, version, sdist sha256 (PyPI), a call into the compiled code (run after the recipe's test)
LONG_TAIL = [
    ("pylibacl", "0.7.0", "ed496e74ca5452d5d4cebe23df229ea462735a96528b9fa28e3ce1f7a2bed31a",
     "import posix1e; a = posix1e.ACL(text='u::rw,g::r,o::-'); assert a.valid(); print(a.to_any_text())"),
    ("pyaudio", "0.2.14", "78dfff3879b4994d1f4fc6485646a57755c6ee3c19647a491f790a0895bd2f87",
     "import pyaudio; v = pyaudio.get_portaudio_version_text(); assert 'PortAudio' in v, v"),
    ("pycurl", "7.45.2", "5730590be0271364a5bddd9e245c9cc0fb710c4cbacbdd95264a3122d23224ca",
     "import pycurl; assert 'libcurl' in pycurl.version, pycurl.version; pycurl.Curl().close()"),
]  # fmt: skip


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    ("project", "version", "sha256", "call"), LONG_TAIL, ids=[p[0] for p in LONG_TAIL]
)
def test_starting_recipe_builds_as_written(
    project: str, version: str, sha256: str, call: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        ["wheelfarm", "recipe", "new", project, "--version", version, "--python", "3.11",
         "--target", TARGET, "--dir", str(tmp_path), "--build", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["status"] == "tested", (report, proc.stderr[-2000:])
    assert report["sdist_sha256"] == sha256
    assert report["extension_modules"], "the recipe's test must import the compiled modules"
    sysroot = test_sysroot("3.11")
    assert sysroot is not None
    spec = TestSpec(imports=tuple(report["extension_modules"]), call=call)
    with BuildLog(tmp_path / "call.log") as log:
        run_wheel_test(Path(report["wheel"]), "3.11", spec, sysroot, tmp_path / "call", log)
