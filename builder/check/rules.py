"""The rules about binaries: architectures against platform tags, pure wheels, macOS versions, suffixes.

Each function takes what the wheel says (its tags) and what it holds (binaries, file names) and returns
findings whose message names the file inside the wheel. The wheel's own files (WHEEL, METADATA,
RECORD) are judged in wheelinfo.py, manylinux/musllinux policy in linux_policy.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from packaging.tags import Tag

from . import archs
from .archs import Expectation
from .binaries import Binary
from .findings import Finding, error, warning

UNKNOWN = "WF000-unknown-platform"
ARCH = "WF001-arch-mismatch"
MISSING_ARCH = "WF002-missing-arch"
PURE = "WF003-native-in-pure-wheel"
MACOS_VERSION = "WF004-macos-min-version"
SUFFIX = "WF007-ext-suffix"
BAD_BINARY = "WF011-bad-binary"


def expectations(tags: Iterable[Tag]) -> tuple[list[Expectation], list[Finding]]:
    """What each platform tag promises, and warnings for tags the checker cannot judge."""
    known: dict[tuple[object, ...], Expectation] = {}
    findings = []
    for platform in sorted({t.platform for t in tags} - {"any"}):
        if (e := archs.expectation(platform)) is not None:
            if (same := known.get(e.key)) is not None:
                e = replace(same, aliases=(*same.aliases, platform))
            known[e.key] = e
        else:
            findings.append(
                warning(
                    UNKNOWN, "", f"platform tag {platform} is unknown to the checker; not judged"
                )
            )
    return list(known.values()), findings


def check_binaries(
    tags: frozenset[Tag], binaries: list[Binary], expected: list[Expectation]
) -> list[Finding]:
    findings: list[Finding] = []
    pure = any(t.platform == "any" for t in tags)
    for binary in binaries:
        if binary.error is not None:
            findings.append(
                error(BAD_BINARY, binary.path, f"{binary.path}: {binary.format} {binary.error}")
            )
            continue
        if not binary.judged:
            continue
        if pure:
            findings.append(
                error(
                    PURE,
                    binary.path,
                    f"{binary.path} is a {binary.format} binary ({', '.join(sorted(binary.archs))}) "
                    "in a wheel tagged `any`",
                )
            )
        for e in expected:
            findings += _against(binary, e)
    return findings


def _against(binary: Binary, e: Expectation) -> list[Finding]:
    held = ", ".join(sorted(binary.archs))
    if binary.format != e.format:
        return [
            error(
                ARCH,
                binary.path,
                f"{binary.path} is a {binary.format} binary ({held}); tag {e.label} needs {e.format}",
            )
        ]
    present = binary.archs & e.archs
    missing = e.archs - binary.archs
    if not present:
        return [
            error(
                ARCH,
                binary.path,
                f"{binary.path} is {held}; tag {e.label} needs {', '.join(sorted(e.archs))}",
            )
        ]
    findings = []
    if missing:
        findings.append(
            error(
                MISSING_ARCH,
                binary.path,
                f"{binary.path} holds {held}; tag {e.label} also needs {', '.join(sorted(missing))}",
            )
        )
    if binary.format != "Mach-O":
        return findings
    for s in binary.slices:
        floor = e.macos_floor(s.arch)
        if s.arch in e.archs and s.min_macos and floor and s.min_macos > floor:
            findings.append(
                error(
                    MACOS_VERSION,
                    binary.path,
                    f"{binary.path} ({s.arch}) needs macOS {s.min_macos}; tag {e.label} promises {floor}",
                )
            )
    return findings


# Extension module file names (importlib.machinery.EXTENSION_SUFFIXES shapes).
_CPYTHON_SO = re.compile(r"\.cpython-(?P<ver>3\d+)(?P<flags>[a-z]*)-(?P<plat>[a-z0-9_-]+)\.so$")
_CPYTHON_PYD = re.compile(r"\.cp(?P<ver>3\d+)(?P<flags>t?)-(?P<plat>win[a-z0-9_]*)\.pyd$")
_PYPY_SO = re.compile(r"\.pypy(?P<ver>\d+)-pp\d+-(?P<plat>[a-z0-9_-]+)\.so$")


def check_suffixes(names: Iterable[str], tags: frozenset[Tag], expected: list[Expectation]):
    findings: list[Finding] = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        if m := _CPYTHON_SO.search(base) or _CPYTHON_PYD.search(base):
            findings += _python_tags(name, "cp", m["ver"], m["flags"], tags)
            findings += _platform(name, m["plat"], expected)
        elif m := _PYPY_SO.search(base):
            findings += _python_tags(name, "pp", m["ver"], None, tags)
            findings += _platform(name, m["plat"], expected)
    return list(dict.fromkeys(findings))


def _python_tags(
    name: str, impl: str, ver: str, flags: str | None, tags: frozenset[Tag]
) -> list[Finding]:
    findings = []
    built_for = f"{impl}{ver}"
    for tag in sorted(tags, key=str):
        if tag.interpreter != built_for:
            problem = f"the wheel is tagged {tag.interpreter}"
        elif tag.abi == "abi3":
            problem = f"the wheel claims the stable ABI ({tag})"
        elif flags is not None and tag.abi not in ("none", f"{built_for}{flags}"):
            problem = f"the wheel's ABI tag is {tag.abi}"
        else:
            continue
        findings.append(
            error(SUFFIX, name, f"{name} is built for {built_for}{flags or ''} only, but {problem}")
        )
    return findings


def _platform(name: str, plat: str, expected: list[Expectation]) -> list[Finding]:
    findings = []
    for e in expected:
        if plat.startswith("win"):
            fits = e.os == "windows" and plat == e.tag
        elif plat == "darwin":
            fits = e.os == "macos"
        else:
            cpu, _, rest = plat.partition("-linux-")
            libc = (
                "musl" if rest.startswith("musl") else "glibc" if rest.startswith("gnu") else None
            )
            fits = (
                e.os == "linux"
                and archs.multiarch_arch(cpu) == e.linux_arch
                and (e.libc is None or libc == e.libc)
            )
        if not fits:
            findings.append(
                error(SUFFIX, name, f"{name} is built for {plat}, not for tag {e.label}")
            )
    return findings
