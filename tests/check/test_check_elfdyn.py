"""The checker's struct ELF reader and dependency tree agree with auditwheel's own, file by file.

auditwheel (through pyelftools) is the oracle: on every ELF file here (the extension modules this
virtualenv installed, the host's shared libraries, and the zig-built fixtures of both architectures)
the checker must read the same interpreter, DT_NEEDED, RPATH/RUNPATH, libc, resolved libraries,
platform (including the x86-64 ISA level), symbol versions and undefined symbols, and compute the
same external references and blacklisted symbols for every one of auditwheel's policies.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from auditwheel.architecture import Architecture
from auditwheel.elfutils import (
    elf_find_versioned_symbols,
    elf_is_python_extension,
    get_undefined_symbols,
)
from auditwheel.lddtree import ldd
from auditwheel.libc import Libc
from auditwheel.policy import WheelPolicies
from elftools.elf.elffile import ELFFile
from support.native import build_natives

from builder.check.elfdyn import ElfReadError, read_elf
from builder.check.lddtree import Resolver, read
from builder.check.linux_policy import (
    _is_python_extension,
    external_references,
    versioned_symbols,
)

SITE = Path(sysconfig.get_paths()["platlib"])
HOST_LIBS = Path("/usr/lib/x86_64-linux-gnu")


def _elves(paths) -> list[Path]:
    out = []
    for p in paths:
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[tuple[Path, Path]]:
    """(file, the folder that plays the unpacked wheel) for every ELF file the test compares."""
    natives = build_natives(tmp_path_factory.mktemp("natives"))
    files = [(p, p.parent) for p in _elves(natives.values())]
    files += [(p, SITE) for p in _elves(sorted(SITE.rglob("*.so*")))]
    # auditwheel's side parses whole symbol tables per policy: small host libraries keep it quick
    host = [p for p in _elves(sorted(HOST_LIBS.glob("lib*.so*"))) if p.stat().st_size < 400_000]
    files += [(p, HOST_LIBS) for p in host[::4]]
    assert len(files) > 60
    return files


def test_dependency_trees_equal_auditwheel(corpus):
    resolver = Resolver()
    compared = 0
    for path, _ in corpus:
        try:
            expected = ldd(path)
        except Exception as exc:  # auditwheel refuses the file; so must the checker
            with pytest.raises((ElfReadError, type(exc))):
                resolver.ldd(path, read(path))
            continue
        assert resolver.ldd(path, read(path)) == expected, path
        compared += 1
    assert compared > 60


def test_symbols_equal_auditwheel(corpus):
    for path, _ in corpus:
        facts = read(path)
        with open(path, "rb") as f:
            elf = ELFFile(f)
            oracle: dict[str, set[str]] = {}
            for lib, version in elf_find_versioned_symbols(elf):
                oracle.setdefault(lib, set()).add(version)
            assert versioned_symbols(facts) == oracle, path
            assert _is_python_extension(path.name, facts) == elf_is_python_extension(path, elf)[0]
        assert facts.undefined == get_undefined_symbols(path), path


def test_external_references_equal_auditwheel(corpus):
    resolver = Resolver()
    arches = {"x86_64": Architecture.x86_64, "aarch64": Architecture.aarch64}
    policies = {name: WheelPolicies(libc=Libc.GLIBC, arch=a) for name, a in arches.items()}
    judged = 0
    for path, root in corpus:
        facts = read(path)
        exe = resolver.ldd(path, facts)
        if exe.libc not in (None, Libc.GLIBC) or exe.platform._base_arch not in arches.values():
            continue
        wheel_policies = policies[exe.platform._base_arch.value]
        oracle = wheel_policies.lddtree_external_references(ldd(path), root)
        for policy in wheel_policies:
            libs, blacklist = external_references(exe, facts, policy, wheel_policies, root)
            assert (libs, blacklist) == (oracle[policy.name].libs, oracle[policy.name].blacklist)
        judged += 1
    assert judged > 60


def test_corrupt_files_raise_elf_read_error(corpus):
    """Truncated and bit-flipped copies of real files: facts or ElfReadError, never another error."""
    import io
    import random

    rng = random.Random(7)
    originals = [p.read_bytes() for p, _ in corpus if p.stat().st_size < 200_000][:8]
    assert originals
    outcomes = {"read": 0, "refused": 0}
    for data in originals:
        variants = [data[:cut] for cut in range(0, min(len(data), 4096), 61)]
        for _ in range(150):
            flipped = bytearray(data)
            for _ in range(rng.randrange(1, 6)):
                # headers and the tables right after them are where the reader looks
                flipped[rng.randrange(min(len(data), 2048))] = rng.randrange(256)
            variants.append(bytes(flipped))
        for variant in variants:
            try:
                read_elf(io.BytesIO(variant))
                outcomes["read"] += 1
            except ElfReadError:
                outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]


def _pyelftools_symbols_above(path: Path, floor: tuple[int, int]) -> list[str]:
    """The oracle: each undefined dynamic symbol's version through pyelftools' own tables."""
    found: set[str] = set()
    with open(path, "rb") as f:
        elf = ELFFile(f)
        verneed, versym = (
            elf.get_section_by_name(".gnu.version_r"),
            elf.get_section_by_name(".gnu.version"),
        )
        dynsym = elf.get_section_by_name(".dynsym")
        if verneed is None or versym is None or dynsym is None:
            return []
        names = {
            aux["vna_other"]: aux.name for _, auxes in verneed.iter_versions() for aux in auxes
        }
        for i, sym in enumerate(dynsym.iter_symbols()):
            if sym["st_shndx"] != "SHN_UNDEF" or not sym.name:
                continue
            version = names.get(versym.get_symbol(i)["ndx"] if i else 0, "")
            parts = version.removeprefix("GLIBC_").split(".")
            numeric = version.startswith("GLIBC_") and all(x.isdigit() for x in parts)
            if numeric and tuple(int(x) for x in parts[:2]) > floor:
                found.add(f"{sym.name}@{version}")
    return sorted(found)


def test_glibc_symbol_versions_equal_pyelftools(corpus):
    """The one GLIBC symbol scan (native libraries, repair) reads what pyelftools reads."""
    checked = 0
    for path, _ in corpus:
        for floor in ((2, 17), (2, 28)):
            assert read(path).symbols_above(floor) == _pyelftools_symbols_above(path, floor), path
        checked += bool(read(path).glibc_versions())
    assert checked > 20
