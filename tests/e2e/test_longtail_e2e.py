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

# project, version, sdist sha256 (PyPI), a call into the compiled code (run after the recipe's test).
# Each lacks an aarch64 wheel for CPython 3.11 on PyPI; each native library is found by the build
# (Debian's Contents index or the sdist's build scripts) and built from Debian's source for glibc 2.17.
LONG_TAIL = [
    ("pylibacl", "0.7.0", "ed496e74ca5452d5d4cebe23df229ea462735a96528b9fa28e3ce1f7a2bed31a",
     "import posix1e; a = posix1e.ACL(text='u::rw,g::r,o::-'); assert a.valid(); print(a.to_any_text())"),
    ("pyaudio", "0.2.14", "78dfff3879b4994d1f4fc6485646a57755c6ee3c19647a491f790a0895bd2f87",
     "import pyaudio; v = pyaudio.get_portaudio_version_text(); assert 'PortAudio' in v, v"),
    ("pycurl", "7.45.2", "5730590be0271364a5bddd9e245c9cc0fb710c4cbacbdd95264a3122d23224ca",
     "import pycurl; assert 'libcurl' in pycurl.version, pycurl.version; pycurl.Curl().close()"),
    ("pyalsaaudio", "0.11.0", "a78a9dca33524b2c9064b34e21f5ab874272313cf324a9a77592f396a5e0fddc",
     "import alsaaudio\nassert alsaaudio.cards() == []  # alsa-lib answers: no sound card here\n"
     "try:\n    alsaaudio.PCM(device='wfnothere')\nexcept alsaaudio.ALSAAudioError as e:\n"
     "    assert 'wfnothere' in str(e) or 'No such' in str(e), e\n"
     "else:\n    raise AssertionError('opened a PCM that does not exist')"),
    ("simpleaudio", "1.0.4", "691c88649243544db717e7edf6a9831df112104e1aefb5f6038a5d071e8cf41d",
     "import simpleaudio\ntry:\n    simpleaudio.play_buffer(b'\\0\\0' * 100, 1, 2, 44100)\n"
     "except Exception as e:\n    assert 'Error opening PCM device' in str(e), e\n"
     "else:\n    raise AssertionError('played without a sound card')"),
    ("pyxattr", "0.8.1", "48c578ecf8ea0bd4351b1752470e301a90a3761c7c21f00f953dcf6d6fa6ee5a",
     "import xattr, tempfile\nwith tempfile.NamedTemporaryFile() as f:\n    try:\n"
     "        xattr.set(f.name, 'user.wf', b'1')\n        assert xattr.get(f.name, 'user.wf') == b'1'\n"
     "    except OSError as e:\n        assert e.errno == 95, e  # no user xattrs on that file system\n"
     "    assert isinstance(xattr.list(f.name), list)"),
    ("evdev", "2.0.0", "442fb3f4c8dfc9e61e901133c356220c02d663eca8f34722e0cecdd637eba504",
     "import evdev\nfrom evdev import ecodes\nassert ecodes.KEY_A == 30 and ecodes.ecodes['KEY_A'] == 30\n"
     "assert isinstance(evdev.list_devices(), list)"),
    ("spidev", "3.8", "2bc02fb8c6312d519ebf1f4331067427c0921d3f77b8bcaf05189a2e8b8382c0",
     "import spidev\ntry:\n    spidev.SpiDev(9, 9)\nexcept OSError as e:\n    assert e.errno == 2, e\n"
     "else:\n    raise AssertionError('opened a bus that does not exist')"),
    ("smbus", "1.1.post2", "f96d345e0aa10053a8a4917634f1dc37ba1f656fa5cace7629b71777e90855c6",
     "import smbus\ntry:\n    smbus.SMBus(99)\nexcept OSError as e:\n    assert e.errno == 2, e\n"
     "else:\n    raise AssertionError('opened a bus that does not exist')"),
    ("llfuse", "1.5.2", "3f7fdc86e3db433c48cb6505fe3000ec1b3e84a4a40a84ad67b8df3a847f0697",
     "import llfuse\nassert llfuse.ROOT_INODE == 1\ntry:\n"
     "    llfuse.init(llfuse.Operations(), '/nonexistent-mountpoint-wf', [])\n"
     "except RuntimeError as e:\n    assert 'fuse_mount failed' in str(e), e  # libfuse said why\n"
     "else:\n    raise AssertionError('mounted a folder that does not exist')"),
    ("scrypt", "0.9.4", "0d212010ba8c2e55475ba6258f30cee4da0432017514d8f6e855b7f1f8c55c77",
     "import scrypt\nh = scrypt.hash(b'password', b'NaCl', N=1024, r=8, p=16)  # RFC 7914's vector\n"
     "assert h.hex().startswith('fdbabe1c9d3472007856e7190d01e9fe'), h.hex()"),
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
