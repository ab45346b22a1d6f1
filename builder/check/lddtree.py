"""auditwheel's dependency tree (`auditwheel.lddtree.ldd`), built from elfdyn facts instead of pyelftools.

The result is auditwheel's own `DynamicExecutable`, resolved with auditwheel's own path helpers
(`load_ld_paths`, `parse_ld_paths`, `readlink`), so its policy code reads it as if auditwheel had
built it. Host libraries are parsed once per tree; tests/test_check_elfdyn.py compares the trees
with auditwheel's on real files.
"""

from __future__ import annotations

import os
from pathlib import Path

from auditwheel.architecture import Architecture
from auditwheel.error import InvalidLibcError
from auditwheel.lddtree import (
    LIBPYTHON_RE,
    DynamicExecutable,
    DynamicLibrary,
    Platform,
    load_ld_paths,
    normpath,
    parse_ld_paths,
    readlink,
)
from auditwheel.libc import Libc
from elftools.elf.enums import ENUM_E_MACHINE, ENUM_EI_OSABI

from . import archs
from .elfdyn import ElfFacts, ElfReadError, read_elf

# pyelftools' names, which auditwheel's Platform compares
_MACHINE_NAMES = {v: k for k, v in ENUM_E_MACHINE.items() if k != "_default_"}
_OSABI_NAMES = {v: k for k, v in ENUM_EI_OSABI.items() if k != "_default_"}
EF_ARM_EABIMASK, EF_ARM_EABI_VER5, EF_ARM_ABI_FLOAT_HARD = 0xFF000000, 0x05000000, 0x400


def platform(facts: ElfFacts) -> Platform:
    """auditwheel's Platform of an ELF: base architecture, x86-64 ISA level, armv7l ABI checks."""
    name = archs.elf_arch(facts.machine, facts.bits, "little" if facts.little_endian else "big")
    base = next((a for a in Architecture if a.value == name and a.baseline == a), None)
    ext, error = None, None
    if base is None:
        error = "Unknown architecture"
    elif base == Architecture.x86_64 and facts.x86_isa_needed is not None:
        level = facts.x86_isa_needed & ~1  # bit 0 is the baseline
        for bit, arch in (
            (8, Architecture.x86_64_v4),
            (4, Architecture.x86_64_v3),
            (2, Architecture.x86_64_v2),
        ):
            if level & bit:
                ext = arch
                break
        else:
            error = "unknown x86_64 ISA" if level else None
    elif base == Architecture.armv7l:
        if facts.flags & EF_ARM_EABIMASK != EF_ARM_EABI_VER5:
            error = "Invalid ARM EABI version for armv7l"
        elif facts.flags & EF_ARM_ABI_FLOAT_HARD != EF_ARM_ABI_FLOAT_HARD:
            error = "armv7l shall use hard-float"
        base = None if error else base
    return Platform(
        _OSABI_NAMES.get(facts.osabi, str(facts.osabi)),
        facts.bits,
        facts.little_endian,
        _MACHINE_NAMES.get(facts.machine, str(facts.machine)),
        base,
        ext,
        error,
    )


def read(path: Path, *, symbols: bool = True) -> ElfFacts:
    with open(path, "rb") as f:
        return read_elf(f, symbols=symbols)


class Resolver:
    """Builds DynamicExecutables; remembers the host libraries it has read (one tree per wheel)."""

    def __init__(self) -> None:
        self._host: dict[Path, tuple[ElfFacts, Platform] | None] = {}

    def _host_lib(self, path: Path) -> tuple[ElfFacts, Platform] | None:
        if path not in self._host:
            try:
                facts = read(path, symbols=False)
                self._host[path] = (facts, platform(facts))
            except (OSError, ElfReadError):
                self._host[path] = None
        return self._host[path]

    def ldd(self, path: Path, facts: ElfFacts) -> DynamicExecutable:
        """What `auditwheel.lddtree.ldd(path)` returns, for the file whose facts are given."""
        libs: dict[str, DynamicLibrary] = {}
        plat = platform(facts)
        libc = None
        ldpaths = None
        if facts.interpreter is not None:
            interpreter = normpath("/" + facts.interpreter)
            soname = os.path.basename(interpreter)
            libs[soname] = DynamicLibrary(
                soname, interpreter, Path(readlink(interpreter, "/", prefixed=True)), plat
            )
            libc = Libc.MUSL if soname.startswith("ld-musl-") else Libc.GLIBC
            ldpaths = load_ld_paths(libc).copy()
            folder = os.path.dirname(facts.interpreter)
            ldpaths["interp"] = [normpath("/" + folder), normpath("/usr" + folder)]
        rpaths, runpaths = self._search_paths(path, facts)
        libc = _libc(path, facts.needed, libc)
        if ldpaths is None:
            ldpaths = load_ld_paths(libc).copy()
        ldpaths["rpath"], ldpaths["runpath"] = rpaths, runpaths
        self._walk(plat, facts.needed, rpaths, runpaths, ldpaths, libs)
        return DynamicExecutable(
            None if facts.interpreter is None else normpath("/" + facts.interpreter),
            libc,
            str(path),
            path,
            plat,
            facts.needed,
            tuple(rpaths),
            tuple(runpaths),
            libs,
        )

    @staticmethod
    def _search_paths(path: Path, facts: ElfFacts) -> tuple[list[str], list[str]]:
        rpaths = parse_ld_paths(facts.rpath or "", path=str(path), root="/")
        runpaths = parse_ld_paths(facts.runpath or "", path=str(path), root="/")
        return ([] if runpaths else rpaths), runpaths  # RUNPATH, when set, overrides RPATH

    def _walk(
        self,
        plat: Platform,
        needed: tuple[str, ...],
        rpaths: list[str],
        runpaths: list[str],
        ldpaths: dict[str, list[str]],
        libs: dict[str, DynamicLibrary],
    ) -> None:
        search = (
            ldpaths["rpath"]
            + rpaths
            + runpaths
            + ldpaths["env"]
            + ldpaths["runpath"]
            + ldpaths["conf"]
            + ldpaths["interp"]
        )
        for soname in needed:
            if soname in libs:
                continue
            if LIBPYTHON_RE.match(soname):  # auditwheel leaves libpython unresolved on purpose
                libs[soname] = DynamicLibrary(soname, None, None)
                continue
            found = self._find(plat, soname, search)
            if found is None:
                libs[soname] = DynamicLibrary(soname, None, None)
                continue
            realpath, fullpath, facts, lib_plat = found
            libs[soname] = DynamicLibrary(soname, fullpath, realpath)
            dep_rpaths, dep_runpaths = self._search_paths(realpath, facts)
            self._walk(lib_plat, facts.needed, dep_rpaths, dep_runpaths, ldpaths, libs)
            libs[soname] = DynamicLibrary(soname, fullpath, realpath, lib_plat, facts.needed)

    def _find(
        self, plat: Platform, soname: str, search: list[str]
    ) -> tuple[Path, str, ElfFacts, Platform] | None:
        for folder in search:
            fullpath = os.path.join(folder, soname)
            realpath = Path(readlink(fullpath, "/", prefixed=True))
            host = self._host_lib(realpath) if realpath.exists() else None
            if host is not None and plat.is_compatible(host[1]):
                return realpath, fullpath, *host
        return None


def _libc(path: Path, needed: tuple[str, ...], libc: Libc | None) -> Libc | None:
    """The libc an ELF links against, by ldd's rules: interpreter, then DT_NEEDED, then file name."""
    for soname in needed:
        if soname.startswith(("libc.musl-", "ld-musl-")):
            found = Libc.MUSL
        elif soname == "libc.so.6" or soname.startswith(("ld-linux-", "ld64.so.")):
            found = Libc.GLIBC
        else:
            continue
        if libc not in (None, found):
            raise InvalidLibcError(
                f"found a dependency on {found} but the libc is already set to {libc}"
            )
        libc = found
    if libc is None:
        if path.name.endswith(("-arm-linux-musleabihf.so", "-linux-musl.so")):
            return Libc.MUSL
        if path.name.endswith(("-arm-linux-gnueabihf.so", "-linux-gnu.so")):
            soabi = path.stem.split(".")[-1].split("-")
            if soabi[0] == "cpython" and soabi[1].startswith(
                tuple(f"3{m}" for m in range(11, 100))
            ):
                return Libc.GLIBC
    return libc
