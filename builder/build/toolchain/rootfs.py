"""aarch64 Debian root filesystems for emulated native builds, made from Debian packages.

A root filesystem holds gcc, g++, make, libc6-dev and one Debian CPython (with its -dev and -venv
packages) for a suite: bookworm has 3.11, trixie 3.13. It is downloaded with the private apt of
`builder.build.toolchain.debian`, unpacked with `dpkg-deb -x` and cached under cache_dir()/"rootfs"/<suite>-arm64-<hash>.
Maintainer scripts never run, so `_configure` does the part of their work a build needs:
the alternatives links (cc, c++), python3, a passwd/group, the mount points, and the byte-compiled
standard library (py3compile would have made it; without it every interpreter start under qemu would
compile it again, and the tree is mounted read-only during builds).

Build requirements are not installed here: they are downloaded on the host as wheels and installed
offline inside the chroot (see builder.build.backends.emulated), so the root filesystem needs no network,
no resolv.conf and no CA certificates.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from builder.build.toolchain.debian import PrivateApt, merge_usr
from builder.build.toolchain.namespace import run_in_rootfs
from builder.common.paths import cache_dir

# Debian suite shipping each CPython version (the arm64 interpreter a native build uses).
SUITE_FOR_PYTHON = {"3.11": "bookworm", "3.13": "trixie"}
# Each suite's glibc: the newest manylinux tag a wheel installed into the chroot may carry.
SUITE_GLIBC = {"bookworm": (2, 36), "trixie": (2, 41)}
ARCH = "arm64"
# Essential packages are not dependencies of anything, so a closure from an empty status lacks a
# shell and coreutils: name them.
BASE_PACKAGES = (
    "base-files", "base-passwd", "bash", "coreutils", "dash", "diffutils", "findutils", "grep",
    "gzip", "perl-base", "sed", "tar",
    "gcc", "g++", "make", "libc6-dev", "pkgconf", "patch",
)  # fmt: skip
# Bump when _configure changes: it is part of the cache key.
LAYOUT_VERSION = "2"
MOUNT_POINTS = ("proc", "dev", "tmp", "work", "wheels", "env")


class RootfsError(RuntimeError):
    """A root filesystem could not be made."""


def suite_for(python: str) -> str:
    try:
        return SUITE_FOR_PYTHON[python]
    except KeyError:
        have = ", ".join(f"{v} ({s})" for v, s in SUITE_FOR_PYTHON.items())
        raise RootfsError(
            f"no Debian suite ships an arm64 Python {python}; available: {have}"
        ) from None


def packages(python: str, extra: Sequence[str] = ()) -> list[str]:
    py = f"python{python}"
    return sorted({*BASE_PACKAGES, py, f"{py}-dev", f"{py}-venv", *extra})


def rootfs_path(python: str, extra: Sequence[str] = ()) -> Path:
    suite = suite_for(python)
    key = "\n".join([LAYOUT_VERSION, suite, *packages(python, extra)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / "rootfs" / f"{suite}-{ARCH}-{digest}"


def rootfs(
    python: str,
    *,
    extra: Sequence[str] = (),
    rebuild: bool = False,
    console: Console | None = None,
) -> Path:
    """The cached aarch64 root filesystem for `python`, made (with progress) when missing.

    `extra` names more Debian arm64 packages (e.g. a C library's -dev package a build links to);
    each package set is its own cached tree.
    """
    dest = rootfs_path(python, extra)
    if (dest / ".complete").exists() and not rebuild:
        return dest
    suite = suite_for(python)
    pkgs = packages(python, extra)
    console = console or Console(stderr=True)
    staging = dest.with_name(dest.name + f".new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"rootfs {suite}/{ARCH}: downloading .debs", total=None)
        debs = PrivateApt(suite, ARCH).download(pkgs)
        progress.update(task, description=f"rootfs {suite}/{ARCH}: unpacking", total=len(debs))
        try:
            staging.mkdir(parents=True)
            for deb in debs:
                proc = subprocess.run(
                    ["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True
                )
                if proc.returncode != 0:
                    raise RootfsError(f"dpkg-deb -x {deb}: {proc.stderr.decode().strip()}")
                progress.advance(task)
            merge_usr(staging)
            progress.update(task, description=f"rootfs {suite}/{ARCH}: configuring")
            _configure(staging, python)
            progress.update(task, description=f"rootfs {suite}/{ARCH}: byte-compiling the stdlib")
            _compile_stdlib(staging, python)
            (staging / ".complete").write_text("\n".join(pkgs) + "\n")
            shutil.rmtree(dest, ignore_errors=True)
            try:
                os.replace(staging, dest)
            except OSError:  # another process put a complete tree there first
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        progress.update(task, description=f"rootfs {suite}/{ARCH}: ready at {dest}")
    return dest


def _link(path: Path, target: str) -> None:
    if not path.exists() and not path.is_symlink():
        path.symlink_to(target)


def _configure(root: Path, python: str) -> None:
    """What the maintainer scripts would have done, as far as a build needs it."""
    usr_bin = root / "usr/bin"
    # update-alternatives (gcc, g++, cpp postinst): cc, c++, cpp.
    _link(usr_bin / "cc", "gcc")
    _link(usr_bin / "c++", "g++")
    _link(usr_bin / "cpp", f"{_gcc_version_link(root, 'cpp')}")
    _link(usr_bin / "sh", "dash")
    _link(usr_bin / "python3", f"python{python}")
    _link(usr_bin / "python", f"python{python}")
    # base-passwd's postinst copies the master files.
    master = root / "usr/share/base-passwd"
    for name in ("passwd", "group"):
        target = root / "etc" / name
        if not target.exists() and (master / f"{name}.master").exists():
            shutil.copyfile(master / f"{name}.master", target)
    for name in MOUNT_POINTS:
        (root / name).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)


def _gcc_version_link(root: Path, tool: str) -> str:
    """`cpp` -> `cpp-12` (bookworm) or `cpp-14` (trixie): whichever the tree holds."""
    found = sorted((root / "usr/bin").glob(f"{tool}-[0-9]*"))
    return found[-1].name if found else tool


def _compile_stdlib(root: Path, python: str) -> None:
    """Byte-compile the standard library inside the chroot, as py3compile would have."""
    argv = [f"/usr/bin/python{python}", "-m", "compileall", "-q", "-j0", f"/usr/lib/python{python}"]
    proc = run_in_rootfs(root, argv, read_only=False, timeout=1200)
    if proc.returncode != 0:
        raise RootfsError(f"compileall in {root} failed: {proc.stdout.strip()[-500:]}")
