"""Targets and Pythons: which platform tags wheelfarm accepts and which wheel tags each target takes.

A target is a platform tag (`manylinux_2_28_aarch64`, `musllinux_1_2_aarch64`, `macosx_11_0_arm64`, or a
legacy alias such as `manylinux2014_aarch64`). Compatibility is decided with `packaging.tags` only: we
build the list of platforms an installer on that target accepts and let `cpython_tags`/`compatible_tags`
do the rest (abi3 from older CPythons, `py3-none-any`, universal2 on macOS arm64, ...).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms

LINUX_ARCHES = ("aarch64", "x86_64", "i686", "ppc64le", "s390x", "armv7l", "riscv64")
MAC_ARCHES = ("arm64", "x86_64", "universal2")

# PEP 600: the legacy manylinux tags are aliases of glibc versions.
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LEGACY_ARCHES = {
    "manylinux1": ("x86_64", "i686"),
    "manylinux2010": ("x86_64", "i686"),
    "manylinux2014": ("x86_64", "i686", "aarch64", "ppc64le", "s390x", "armv7l"),
}

_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_([a-z0-9_]+)$")
_LEGACY = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_([a-z0-9_]+)$")
_MUSLLINUX = re.compile(r"^musllinux_(\d+)_(\d+)_([a-z0-9_]+)$")
_MACOSX = re.compile(r"^macosx_(\d+)_(\d+)_([a-z0-9_]+)$")
_PYTHON = re.compile(r"^3\.(\d+)(t?)$")


class TargetError(ValueError):
    """A platform tag or Python version wheelfarm cannot build for; the message says why."""


@dataclass(frozen=True)
class Target:
    """A parsed target platform tag."""

    tag: str  # as written in the recipe
    os: str  # "manylinux" | "musllinux" | "macosx"
    version: tuple[int, int]  # glibc, musl or macOS version
    arch: str

    @property
    def platforms(self) -> tuple[str, ...]:
        """Platform tags an installer on this target accepts, most specific first."""
        return _platforms(self.os, self.version, self.arch)

    @property
    def cibw_platform(self) -> str:
        """The platform half of a cibuildwheel build identifier (`cp311-manylinux_aarch64`)."""
        return f"{self.os}_{self.arch}"


@functools.cache
def parse_target(tag: str) -> Target:
    """Parse and validate a target platform tag; raise TargetError with a readable reason."""
    if m := _LEGACY.match(tag):
        legacy, arch = m.groups()
        if arch not in _LEGACY_ARCHES[legacy]:
            raise TargetError(f"{legacy} has no {arch!r} architecture")
        return Target(tag, "manylinux", LEGACY_MANYLINUX[legacy], arch)
    if m := _MANYLINUX.match(tag):
        major, minor, arch = int(m[1]), int(m[2]), m[3]
        if arch not in LINUX_ARCHES:
            raise TargetError(
                f"unknown Linux architecture {arch!r} (one of {', '.join(LINUX_ARCHES)})"
            )
        if major != 2 or minor < 5:
            raise TargetError(f"manylinux needs a glibc version 2.5 or later, not {major}.{minor}")
        return Target(tag, "manylinux", (major, minor), arch)
    if m := _MUSLLINUX.match(tag):
        major, minor, arch = int(m[1]), int(m[2]), m[3]
        if arch not in LINUX_ARCHES:
            raise TargetError(
                f"unknown Linux architecture {arch!r} (one of {', '.join(LINUX_ARCHES)})"
            )
        if major != 1:
            raise TargetError(f"musllinux needs a musl version 1.x, not {major}.{minor}")
        return Target(tag, "musllinux", (major, minor), arch)
    if m := _MACOSX.match(tag):
        major, minor, arch = int(m[1]), int(m[2]), m[3]
        if arch not in MAC_ARCHES:
            raise TargetError(
                f"unknown macOS architecture {arch!r} (one of {', '.join(MAC_ARCHES)})"
            )
        if major < 10 or (major == 10 and minor < 9):
            raise TargetError(f"macOS {major}.{minor} is too old (10.9 is the oldest wheel target)")
        if major >= 11 and minor != 0:
            raise TargetError(
                f"macOS {major} and later are tagged with minor 0 (macosx_{major}_0_{arch})"
            )
        if arch == "arm64" and major < 11:
            raise TargetError("arm64 macOS starts at 11.0 (macosx_11_0_arm64)")
        return Target(tag, "macosx", (major, minor), arch)
    raise TargetError(
        "not a platform tag wheelfarm builds for "
        "(manylinux_X_Y_ARCH, manylinux2014_ARCH, musllinux_X_Y_ARCH or macosx_X_Y_ARCH)"
    )


@functools.cache
def _platforms(os_: str, version: tuple[int, int], arch: str) -> tuple[str, ...]:
    if os_ == "macosx":
        return tuple(mac_platforms(version, arch))
    major, newest = version
    oldest = 5 if os_ == "manylinux" else 0
    plats: list[str] = []
    for minor in range(newest, oldest - 1, -1):
        plats.append(f"{os_}_{major}_{minor}_{arch}")
        if os_ == "manylinux":
            # An installer on glibc 2.17+ also accepts the legacy alias of each older glibc.
            plats.extend(
                f"{legacy}_{arch}"
                for legacy, glibc in LEGACY_MANYLINUX.items()
                if glibc == (major, minor) and arch in _LEGACY_ARCHES[legacy]
            )
    return tuple(plats)


@functools.cache
def parse_python(version: str) -> tuple[int, int, bool]:
    """Parse "3.11" or "3.13t" (free-threaded) into (3, 11, False); raise TargetError otherwise."""
    m = _PYTHON.match(version)
    if not m:
        raise TargetError('a CPython version such as "3.12" or "3.13t" (free-threaded)')
    minor, threaded = int(m[1]), bool(m[2])
    if not 6 <= minor <= 30:
        raise TargetError(
            f"CPython 3.{minor} is not a version wheelfarm can build for (3.6 or later)"
        )
    if threaded and minor < 13:
        raise TargetError("free-threaded CPython starts at 3.13")
    return 3, minor, threaded


@functools.cache
def cibw_identifier(python: str, target: str) -> str:
    """The cibuildwheel build identifier for a Python and target, e.g. `cp311-manylinux_aarch64`."""
    _, minor, threaded = parse_python(python)
    return f"cp3{minor}{'t' if threaded else ''}-{parse_target(target).cibw_platform}"


@functools.cache
def supported_tags(python: str, target: str) -> frozenset[Tag]:
    """Every wheel tag a CPython `python` on `target` installs, per packaging.tags."""
    return frozenset(_priority(python, target))


def tag_priority(python: str, target: str) -> dict[Tag, int]:
    """Rank of each supported tag (0 = most specific), the order an installer prefers them in."""
    return _priority(python, target)


@functools.cache
def _priority(python: str, target: str) -> dict[Tag, int]:
    major, minor, threaded = parse_python(python)
    plats = list(parse_target(target).platforms)
    abi = f"cp{major}{minor}{'t' if threaded else ''}"
    ordered = [*cpython_tags((major, minor), abis=[abi], platforms=plats)]
    ordered += compatible_tags((major, minor), interpreter=f"cp{major}{minor}", platforms=plats)
    ranks: dict[Tag, int] = {}
    for i, tag in enumerate(ordered):
        ranks.setdefault(tag, i)
    return ranks
