"""What a Mac checks when Python imports a wheel's Mach-O files, judged without a Mac.

Three rules, on every slice of every Mach-O in a wheel tagged macosx_*:
- WF013 code signature: arm64 slices must carry a signature whose every hash matches (the kernel
  kills a process that maps a page of a modified, unsigned arm64 binary); other slices are verified
  when signed (codesign.py).
- WF014 undefined symbols: each one resolves where dyld will look. Two-level symbols in the library
  their ordinal names (libSystem: zig's libSystem.tbd; a dylib in the wheel: its exports); flat
  ones (`-undefined dynamic_lookup`, the ordinal of the executable) in the target CPython's exports,
  libSystem, and the wheel's dylibs the binary links (macos_exports.py says where each list comes
  from). Symbols of other system libraries (/usr/lib/libbz2..., frameworks) cannot be listed here:
  they are counted as unverified in the evidence, never called resolved.
- WF015 load paths: every LC_LOAD_DYLIB (and weak/re-export/upward variants) is a system path
  (/usr/lib, /System) or an @loader_path/@rpath path that lands on a file inside the wheel; @rpath is
  expanded with the binary's own LC_RPATH entries and those of the wheel's binaries that load it.
  An LC_RPATH outside the wheel and the system is a warning (dyld searches it on the user's Mac).

`check` returns findings and one evidence line per slice saying what was verified.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.tags import Tag

from . import codesign, macos_exports
from .binaries import BinaryFormatError
from .findings import Finding, error, warning
from .macho import (
    DYNAMIC_LOOKUP_ORDINAL,
    EXECUTABLE_ORDINAL,
    SELF_LIBRARY_ORDINAL,
    WEAK_LOOKUP_ORDINAL,
    MachO,
    slices,
)

SIGNATURE = "WF013-macos-code-signature"
SYMBOLS = "WF014-macos-undefined-symbol"
LOAD_PATH = "WF015-macos-load-path"
SYSTEM_PREFIXES = ("/usr/lib/", "/System/")
MUST_BE_SIGNED = {"arm64", "arm64e"}
_CPYTHON_SUFFIX = re.compile(r"\.cpython-3(\d+)t?-darwin\.so$")
_SHOWN = 5  # names listed in one finding


@dataclass
class _Image:
    path: str  # inside the wheel
    data: bytes
    macho: MachO


def python_version(path: str, tags: Iterable[Tag]) -> str | None:
    """The CPython X.Y whose exports a binary's flat symbols must find (suffix first, then tags)."""
    if m := _CPYTHON_SUFFIX.search(path):
        return f"3.{m[1]}"
    for tag in sorted(tags, key=str):
        if m := re.fullmatch(r"cp3(\d+)", tag.interpreter):
            return f"3.{m[1]}"
    return None


def check(
    machos: Mapping[str, bytes], names: Iterable[str], tags: frozenset[Tag]
) -> tuple[list[Finding], list[str]]:
    """Findings and evidence for the Mach-O members `machos` (path -> bytes) of a wheel with `names`."""
    files = set(names)
    findings: list[Finding] = []
    evidence: list[str] = []
    images: dict[str, list[_Image]] = {}
    for path, data in sorted(machos.items()):
        try:
            images[path] = [_Image(path, part, m) for part, m in slices(data)]
        except (BinaryFormatError, ValueError, IndexError) as exc:  # struct.error is a ValueError
            findings.append(error(SIGNATURE, path, f"{path}: unreadable Mach-O: {exc}"))
    rpaths = _rpath_dirs(images, files)
    for path, parts in images.items():
        for image in parts:
            where = f"{path} ({image.macho.arch})"
            found, said = _signature(image, where)
            findings += found
            lines = [said]
            found, said = _load_paths(image, where, files, rpaths.get(path, set()))
            findings += found
            lines.append(said)
            found, said = _symbols(image, where, files, images, rpaths.get(path, set()), tags)
            findings += found
            lines.append(said)
            evidence.append(f"{where}: " + "; ".join(lines))
    return findings, evidence


def _signature(image: _Image, where: str) -> tuple[list[Finding], str]:
    macho = image.macho
    if macho.signature is None and macho.arch not in MUST_BE_SIGNED:
        return [], "not signed (allowed for this architecture)"
    try:
        sig = codesign.verify(image.data, macho)
    except codesign.SignatureError as exc:
        return [error(SIGNATURE, image.path, f"{where} {exc}")], "signature INVALID"
    except (ValueError, IndexError) as exc:
        return [error(SIGNATURE, image.path, f"{where}: malformed code signature: {exc}")], (
            "signature INVALID"
        )
    return [], sig.describe()


def _resolve(base_dir: str, rest: str) -> str:
    return posixpath.normpath(posixpath.join(base_dir, rest))


def _own_rpaths(image: _Image) -> set[str]:
    folder = posixpath.dirname(image.path)
    return {
        _resolve(folder, r.removeprefix("@loader_path/").removeprefix("@loader_path"))
        for r in image.macho.rpaths
        if r.startswith("@loader_path")
    }


def _rpath_dirs(images: Mapping[str, list[_Image]], files: set[str]) -> dict[str, set[str]]:
    """Wheel folders each binary's @rpath can mean: its own LC_RPATHs and its loaders' (dyld's stack)."""
    dirs = {p: {d for i in parts for d in _own_rpaths(i)} for p, parts in images.items()}
    changed = True
    while changed:  # propagate down the load graph until nothing new is learnt
        changed = False
        for path, parts in images.items():
            for image in parts:
                for dylib in image.macho.dylibs:
                    target = _target(image.path, dylib.path, dirs[path], files)
                    if target in dirs and not dirs[path] <= dirs[target]:
                        dirs[target] |= dirs[path]
                        changed = True
    return dirs


def _target(path: str, load: str, rpath_dirs: set[str], files: set[str]) -> str | None:
    """The wheel file a load command names, or None when it lands outside the wheel."""
    folder = posixpath.dirname(path)
    if load.startswith("@loader_path/"):
        candidate = _resolve(folder, load.removeprefix("@loader_path/"))
        return candidate if candidate in files else None
    if load.startswith("@rpath/"):
        for d in sorted(rpath_dirs):
            candidate = _resolve(d, load.removeprefix("@rpath/"))
            if candidate in files:
                return candidate
    return None


def _load_paths(
    image: _Image, where: str, files: set[str], rpath_dirs: set[str]
) -> tuple[list[Finding], str]:
    findings = []
    for dylib in image.macho.dylibs:
        load = dylib.path
        if load.startswith(SYSTEM_PREFIXES):
            continue
        if load.startswith(("@loader_path/", "@rpath/")):
            if _target(image.path, load, rpath_dirs, files) is not None:
                continue
            problem = "names no file in the wheel" + (
                f" (@rpath searched: {', '.join(sorted(rpath_dirs)) or 'no LC_RPATH'})"
                if load.startswith("@rpath/")
                else ""
            )
        elif load.startswith("@executable_path"):
            problem = "is relative to the executable, which is Python, not part of the wheel"
        else:
            problem = "is an absolute path outside /usr/lib and /System: it is not on a user's Mac"
        make = warning if dylib.weak else error
        findings.append(make(LOAD_PATH, image.path, f"{where} {dylib.command} {load} {problem}"))
    for rpath in image.macho.rpaths:
        if rpath.startswith(SYSTEM_PREFIXES):
            continue
        if rpath.startswith("@loader_path"):
            if not _resolve(
                posixpath.dirname(image.path), rpath[len("@loader_path") :].lstrip("/")
            ).startswith(".."):
                continue
            problem = "leaves the wheel"
        else:
            problem = "is outside the wheel and the system: dyld searches it on the user's Mac"
        findings.append(warning(LOAD_PATH, image.path, f"{where} LC_RPATH {rpath} {problem}"))
    loads = ", ".join(d.path for d in image.macho.dylibs) or "nothing"
    bad = sum(f.severity == "error" for f in findings)
    return findings, f"loads {loads}" + (f" ({bad} unresolvable)" if bad else " (all found)")


def _exports_of(
    path: str | None, arch: str, images: Mapping[str, list[_Image]]
) -> frozenset[str] | None:
    if path is None or path not in images:
        return None
    return next((i.macho.exports for i in images[path] if i.macho.arch == arch), frozenset())


def _symbols(
    image: _Image,
    where: str,
    files: set[str],
    images: Mapping[str, list[_Image]],
    rpath_dirs: set[str],
    tags: frozenset[Tag],
) -> tuple[list[Finding], str]:
    macho = image.macho
    arch = "arm64" if macho.arch.startswith("arm64") else macho.arch
    findings: list[Finding] = []
    try:
        libsystem = macos_exports.libsystem_exports(arch)
    except macos_exports.ExportsUnavailable as exc:
        return [warning(SYMBOLS, image.path, f"{where}: symbols not checked: {exc}")], (
            "symbols not checked"
        )
    version = python_version(image.path, tags)
    python: frozenset[str] | None = None
    python_note = ""
    if version is not None:
        try:
            python = macos_exports.python_exports(version)
            python_note = f"CPython {version} ({macos_exports.libpython(version)})"
        except macos_exports.ExportsUnavailable as exc:
            python_note = str(exc)
    linked_in_wheel = [
        _exports_of(_target(image.path, d.path, rpath_dirs, files), macho.arch, images)
        for d in macho.dylibs
    ]
    flat = frozenset().union(libsystem, *(e for e in linked_in_wheel if e is not None))
    missing: list[str] = []
    unverified: list[str] = []
    counts = {"python": 0, "libSystem": 0, "wheel": 0}
    for sym in macho.imports:
        ordinal = sym.ordinal if macho.two_level else DYNAMIC_LOOKUP_ORDINAL
        if ordinal == SELF_LIBRARY_ORDINAL:  # bound in the image itself
            if sym.name in macho.exports:
                counts["wheel"] += 1
            elif not sym.weak:
                missing.append(f"{sym.name} (from itself)")
            continue
        if ordinal in (WEAK_LOOKUP_ORDINAL, DYNAMIC_LOOKUP_ORDINAL, EXECUTABLE_ORDINAL):
            if sym.name in flat:
                counts["libSystem" if sym.name in libsystem else "wheel"] += 1
            elif python is not None and sym.name in python:
                counts["python"] += 1
            elif python is None:
                unverified.append(sym.name)
            elif not sym.weak:
                missing.append(sym.name)
            continue
        if not 1 <= ordinal <= len(macho.dylibs):
            findings.append(
                error(
                    SYMBOLS,
                    image.path,
                    f"{where}: {sym.name} names library ordinal {ordinal}, but the binary loads "
                    f"{len(macho.dylibs)} libraries",
                )
            )
            continue
        lib = macho.dylibs[ordinal - 1].path
        if lib == macos_exports.LIBSYSTEM or lib.startswith("/usr/lib/system/"):
            exports, bucket = libsystem, "libSystem"
        else:
            exports, bucket = linked_in_wheel[ordinal - 1], "wheel"
        if exports is None:
            unverified.append(f"{sym.name} ({lib})")
        elif sym.name in exports:
            counts[bucket] += 1
        elif not sym.weak:
            missing.append(f"{sym.name} (from {lib})")
    if missing:
        shown = ", ".join(missing[:_SHOWN]) + (" ..." if len(missing) > _SHOWN else "")
        where_python = f"; CPython exports from {python_note}" if python_note else ""
        findings.append(
            error(
                SYMBOLS,
                image.path,
                f"{where}: {len(missing)} undefined symbols resolve nowhere dyld will look: "
                f"{shown}{where_python}",
            )
        )
    if python is None and any(not n.endswith(")") for n in unverified):
        findings.append(
            warning(
                SYMBOLS,
                image.path,
                f"{where}: flat-namespace symbols not checked against Python: "
                f"{python_note or 'the wheel names no CPython version'}",
            )
        )
    resolved = sum(counts.values())
    said = (
        f"{resolved} of {len(macho.imports)} imported symbols resolved "
        f"({counts['python']} in {python_note or 'no CPython'}, {counts['libSystem']} in "
        f"libSystem.tbd, {counts['wheel']} in the wheel's dylibs)"
    )
    if unverified:
        said += f", {len(unverified)} not verifiable here ({', '.join(unverified[:3])} ...)"
    return findings, said
