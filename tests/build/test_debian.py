from __future__ import annotations

import os
import pwd
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from builder.build.toolchain.debian import (
    DebianError,
    PrivateApt,
    extract_debs,
    host_mirror,
    sysroot,
)
from builder.build.toolchain.host import ensure_qemu
from builder.farm.sandbox import namespaces_available, sandboxed

EM_AARCH64 = 183


def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WHEELFARM_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert host_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# c\ndeb [arch=amd64] http://other.example/debian bookworm main\n"
    )
    assert host_mirror(tmp_path) == "http://other.example/debian"
    (tmp_path / "sources.list").write_text("")
    with pytest.raises(DebianError, match="WHEELFARM_DEBIAN_MIRROR"):
        host_mirror(tmp_path)


def test_download_closure_and_extract_merged_usr(tmp_path: Path) -> None:
    apt = PrivateApt("bookworm", "arm64")
    debs = apt.download(["zlib1g"])
    names = {d.name.split("_")[0] for d in debs}
    assert {"zlib1g", "libc6"} <= names  # the dependency closure, not just the package
    root = extract_debs(debs, tmp_path / "root")
    assert (root / "lib").is_symlink() and (root / "lib").resolve() == (root / "usr/lib").resolve()
    libz = next((root / "usr/lib/aarch64-linux-gnu").glob("libz.so.1*"))
    head = libz.resolve().read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and struct.unpack("<H", head[18:20])[0] == EM_AARCH64
    assert not list(tmp_path.glob(".root.*")), "no temporary folder is left behind"


def test_unknown_package_is_a_clear_error() -> None:
    with pytest.raises(DebianError, match="no-such-package-wheelfarm"):
        PrivateApt("bookworm", "arm64").download(["no-such-package-wheelfarm"])


def test_host_dpkg_state_is_untouched() -> None:
    foreign = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
    )
    PrivateApt("bookworm", "arm64").download(["zlib1g"])
    after = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
    )
    assert "arm64" not in after.stdout and after.stdout == foreign.stdout


@pytest.mark.skipif(not namespaces_available(), reason="no user namespaces here")
def test_a_sandboxed_build_downloads_into_a_root_an_earlier_apt_run_as_root_made(
    tmp_path: Path,
) -> None:
    # A nightly build runs in a user namespace that maps only root; the cache it shares was made
    # by host runs, where apt used to hand the partial folders to _apt.
    root = tmp_path / "apt"
    PrivateApt("bookworm", "arm64", root=root).download(["zlib1g"])
    apt_user = pwd.getpwnam("_apt")
    for partial in (root / "state/lists/partial", root / "cache/archives/partial"):
        os.chown(partial, apt_user.pw_uid, 0)
        partial.chmod(0o700)
    (root / "state/updated").unlink()  # stale lists: the sandboxed run fetches them again
    script = (
        "import sys; from pathlib import Path; from builder.build.toolchain.debian import PrivateApt; "
        "print(*PrivateApt('bookworm', 'arm64', root=Path(sys.argv[1])).download(['libffi8']))"
    )
    (tmp_path / "ro").mkdir()
    command = sandboxed([sys.executable, "-c", script, str(root)], [tmp_path / "ro"])
    assert command[0] == "unshare"
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert any(
        Path(p).name.startswith("libffi8_") and Path(p).exists() for p in done.stdout.split()
    )


@pytest.mark.slow
def test_sysroot_runs_arm64_python_under_qemu() -> None:
    root = sysroot("bookworm", ["python3.11"])
    assert sysroot("bookworm", ["python3.11"]) == root  # cached
    qemu = ensure_qemu()  # installs Debian's qemu-user on first use
    out = subprocess.run(
        [
            str(qemu),
            "-L",
            str(root),
            str(root / "usr/bin/python3.11"),
            "-c",
            "import platform; print(platform.machine())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "aarch64"
