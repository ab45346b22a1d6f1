"""Architecture names of binaries and what a platform tag promises, from the data in archs.toml."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from packaging.version import Version

Os = Literal["linux", "macos", "windows"]
FORMAT_OF_OS: dict[str, str] = {"linux": "ELF", "macos": "Mach-O", "windows": "PE"}

_LINUX_TAG = re.compile(
    r"^(?P<family>manylinux_\d+_\d+|manylinux1|manylinux2010|manylinux2014|musllinux_\d+_\d+|linux)"
    r"_(?P<arch>[a-z0-9_]+)$"
)
_MACOS_TAG = re.compile(r"^macosx_(?P<major>\d+)_(?P<minor>\d+)_(?P<fmt>[a-z0-9_]+)$")


@functools.cache
def data() -> dict[str, Any]:
    return tomllib.loads(resources.files(__package__).joinpath("archs.toml").read_text())


def elf_arch(machine: int, bits: int, endian: str) -> str:
    for entry in data()["elf"]:
        if (
            entry["machine"] == machine
            and entry["bits"] == bits
            and entry.get("endian", endian) == endian
        ):
            return entry["arch"]
    return f"elf-machine-{machine}"


def macho_arch(cputype: int, cpusubtype: int) -> str:
    subtype = cpusubtype & 0x00FFFFFF  # the high byte holds capability bits (e.g. arm64e's ABI)
    for entry in data()["macho"]:
        if entry["cputype"] == cputype and entry.get("subtype", subtype) == subtype:
            return entry["arch"]
    return f"macho-cputype-{cputype:#x}"


def pe_arch(machine: int) -> str:
    return data()["pe"].get(f"{machine:#06x}", f"pe-machine-{machine:#06x}")


@dataclass(frozen=True)
class Expectation:
    """What one platform tag promises about every binary in the wheel."""

    tag: str
    os: Os
    archs: frozenset[str]  # every binary must hold all of these (one, except macOS multi-arch)
    macos_version: Version | None = None
    libc: Literal["glibc", "musl"] | None = None  # manylinux / musllinux (auditwheel policy)
    linux_arch: str | None = None
    family: str | None = None  # linux: manylinux_X_Y / musllinux_X_Y / linux, legacy names resolved
    aliases: tuple[str, ...] = ()  # other tags of the wheel that promise exactly the same

    @property
    def label(self) -> str:
        return "/".join((self.tag, *self.aliases))

    @property
    def key(self) -> tuple[object, ...]:
        """Tags with equal keys promise the same thing (manylinux2014_x = manylinux_2_17_x)."""
        return (self.os, self.archs, self.macos_version, self.family)

    @property
    def format(self) -> str:
        return FORMAT_OF_OS[self.os]

    def macos_floor(self, arch: str) -> Version | None:
        """The newest minimum macOS a slice of `arch` may ask for under this tag."""
        if self.macos_version is None:
            return None
        floor = data()["macos_floor"].get(arch)
        return max(self.macos_version, Version(floor)) if floor else self.macos_version


def expectation(platform: str) -> Expectation | None:
    """What the platform tag `platform` promises, or None for `any` and tags the checker does not know."""
    if m := _LINUX_TAG.match(platform):
        arch = data()["linux"].get(m["arch"])
        if arch is None:
            return None
        family = data()["linux_legacy"].get(m["family"], m["family"])
        libc = "musl" if family.startswith("musllinux") else None
        if family.startswith("manylinux"):
            libc = "glibc"
        return Expectation(
            platform, "linux", frozenset({arch}), libc=libc, linux_arch=m["arch"], family=family
        )
    if m := _MACOS_TAG.match(platform):
        archs = data()["macos"].get(m["fmt"])
        if archs is None:
            return None
        version = Version(f"{m['major']}.{m['minor']}")
        return Expectation(platform, "macos", frozenset(archs), macos_version=version)
    if machine := data()["windows"].get(platform):
        return Expectation(platform, "windows", frozenset({machine}))
    return None


def multiarch_arch(cpu: str) -> str | None:
    """The Linux tag architecture of a multiarch triplet's CPU part (`aarch64`, `arm`, `i386`, ...)."""
    return data()["multiarch"].get(cpu)
