"""Read an ELF file's dynamic-linking facts with struct: what the manylinux/musllinux judgement needs.

auditwheel reads the same facts through pyelftools, which builds an object for every section header
and every symbol; over a wheel of many extension modules that costs seconds, more than hashing the
whole wheel. This module reads the ELF header, the program headers (interpreter, dynamic segment),
the dynamic tags, the GNU version needs, the dynamic symbol table and the GNU property notes with a
few `struct` calls over just those parts of the file. tests/test_check_elfdyn.py holds it equal to
auditwheel's own `ldd` and `elfutils` readings on real files.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from typing import BinaryIO

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
SHT_NOTE, SHT_DYNSYM, SHT_GNU_VERNEED, SHT_GNU_VERSYM = 7, 11, 0x6FFFFFFE, 0x6FFFFFFF
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 15, 29
NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
STB_WEAK = 2
STT_NOTYPE, STT_FUNC = 0, 2
SHN_UNDEF = 0
_MAX_TABLE = 1 << 28  # a header claiming a table this large is corrupt, not a real library
_MAX_OFFSET = 1 << 48


_GLIBC = re.compile(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?")


def glibc_version(name: str) -> tuple[int, int] | None:
    """(2, 17) for "GLIBC_2.17", None for any other version name."""
    m = _GLIBC.fullmatch(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


class ElfReadError(ValueError):
    """The file starts like an ELF but its tables do not hold together."""


@dataclass(frozen=True)
class Symbol:
    name: str
    undefined: bool
    weak: bool
    kind: int  # STT_*
    version: str | None = None  # the version it needs (e.g. GLIBC_2.17), for undefined symbols


@dataclass(frozen=True)
class ElfFacts:
    bits: int  # 32 or 64
    little_endian: bool
    machine: int  # e_machine
    osabi: int  # e_ident[EI_OSABI]
    flags: int  # e_flags
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: str | None  # the last DT_RPATH, as the loader (and auditwheel) take it
    runpath: str | None
    version_needs: tuple[tuple[str, str], ...]  # (library file, version name) from .gnu.version_r
    symbols: tuple[Symbol, ...]  # the dynamic symbol table, empty unless asked for
    x86_isa_needed: int | None  # GNU_PROPERTY_X86_ISA_1_NEEDED, when the notes carry it

    def glibc_versions(self) -> set[tuple[int, int]]:
        """The GLIBC_x.y versions this file needs."""
        return {v for _, name in self.version_needs if (v := glibc_version(name))}

    def symbols_above(self, floor: tuple[int, int]) -> list[str]:
        """`symbol@GLIBC_x.y` for the undefined symbols that need a glibc newer than `floor`
        (needs the file read with symbols=True)."""
        return sorted(
            {
                f"{s.name}@{s.version}"
                for s in self.symbols
                if s.undefined and s.version and (glibc_version(s.version) or (0, 0)) > floor
            }
        )

    @property
    def undefined(self) -> frozenset[str]:
        """Symbols the file needs from elsewhere, weak ones left out (they may stay unresolved)."""
        return frozenset(s.name for s in self.symbols if s.undefined and not s.weak)


@dataclass(frozen=True)
class _Layout:
    """How to unpack this file's headers: byte order and word size decide every struct."""

    order: str
    bits: int

    def unpack(self, fmt: str, data: bytes, offset: int = 0) -> tuple[int, ...]:
        return struct.unpack_from(self.order + fmt, data, offset)

    @property
    def word(self) -> str:
        return "Q" if self.bits == 64 else "I"


def read_elf(f: BinaryIO, *, symbols: bool = True) -> ElfFacts:
    """The dynamic-linking facts of the ELF file open in `f` (binary, seekable).

    Raises ElfReadError when the file's headers or tables are truncated or do not hold together.
    """
    try:
        return _read_elf(f, symbols)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ElfReadError(f"corrupt ELF tables: {exc}") from exc


def _read_elf(f: BinaryIO, symbols: bool) -> ElfFacts:
    ident = _read(f, 0, 16, "ELF identification")
    if ident[:4] != b"\x7fELF":
        raise ElfReadError("not an ELF file")
    bits = {1: 32, 2: 64}.get(ident[4])
    order = {1: "<", 2: ">"}.get(ident[5])
    if bits is None or order is None:
        raise ElfReadError(f"bad ELF class {ident[4]} or data encoding {ident[5]}")
    lay = _Layout(order, bits)
    w = lay.word
    header = _read(f, 16, 48 if bits == 64 else 36, "ELF header")
    _, machine, _, _, phoff, shoff, flags, _, phentsize, phnum, shentsize, shnum, _ = lay.unpack(
        f"HHI{w}{w}{w}IHHHHHH", header
    )
    segments = _program_headers(f, lay, phoff, phentsize, phnum)
    sections = _section_headers(f, lay, shoff, shentsize, shnum)

    interpreter = None
    for p_type, offset, _vaddr, filesz in segments:
        if p_type == PT_INTERP:
            interpreter = _read(f, offset, filesz, "interpreter").split(b"\0", 1)[0].decode()
            break
    needed, rpath, runpath = _dynamic(f, lay, segments)

    version_needs: list[tuple[str, str, int]] = []
    dynsym: list[Symbol] = []
    versym: tuple[int, ...] = ()
    isa: int | None = None
    for sh_type, offset, size, link, info, entsize, align in sections:
        if sh_type == SHT_GNU_VERNEED:
            version_needs += _version_needs(f, lay, offset, size, info, sections, link)
        elif sh_type == SHT_DYNSYM and symbols:
            dynsym += _symbols(f, lay, offset, size, entsize, sections, link)
        elif sh_type == SHT_GNU_VERSYM and symbols:
            versym = lay.unpack(f"{size // 2}H", _read(f, offset, size - size % 2, ".gnu.version"))
        elif sh_type == SHT_NOTE:
            isa = _x86_isa(_read(f, offset, size, "note"), lay, align, isa)
    if versym and len(versym) == len(dynsym):
        names = {index: name for _, name, index in version_needs}
        dynsym = [
            replace(s, version=names.get(v & 0x7FFF)) if s.undefined else s
            for s, v in zip(dynsym, versym, strict=True)
        ]
    return ElfFacts(
        bits,
        order == "<",
        machine,
        ident[7],
        flags,
        interpreter,
        needed,
        rpath,
        runpath,
        tuple((library, name) for library, name, _ in version_needs),
        tuple(dynsym),
        isa,
    )


def _read(f: BinaryIO, offset: int, size: int, what: str) -> bytes:
    if size > _MAX_TABLE or not 0 <= offset < _MAX_OFFSET:
        raise ElfReadError(f"implausible {what} of {size} bytes at offset {offset}")
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ElfReadError(f"truncated {what} at offset {offset}")
    return data


def _program_headers(
    f: BinaryIO, lay: _Layout, phoff: int, entsize: int, count: int
) -> list[tuple[int, int, int, int]]:
    """(p_type, p_offset, p_vaddr, p_filesz) of each program header."""
    table = _read(f, phoff, entsize * count, "program headers")
    out = []
    for i in range(count):
        if lay.bits == 64:
            p_type, _, offset, vaddr, _, filesz = lay.unpack("IIQQQQ", table, i * entsize)
        else:
            p_type, offset, vaddr, _, filesz = lay.unpack("IIIII", table, i * entsize)
        out.append((p_type, offset, vaddr, filesz))
    return out


def _section_headers(
    f: BinaryIO, lay: _Layout, shoff: int, entsize: int, count: int
) -> list[tuple[int, int, int, int, int, int, int]]:
    """(sh_type, sh_offset, sh_size, sh_link, sh_info, sh_entsize, sh_addralign) of each section."""
    if shoff == 0 or count == 0:
        return []
    table = _read(f, shoff, entsize * count, "section headers")
    w = lay.word
    out = []
    for i in range(count):
        _, sh_type, _, _, offset, size, link, info, align, ent = lay.unpack(
            f"II{w}{w}{w}{w}II{w}{w}", table, i * entsize
        )
        out.append((sh_type, offset, size, link, info, ent, align))
    return out


def _dynamic(
    f: BinaryIO, lay: _Layout, segments: list[tuple[int, int, int, int]]
) -> tuple[tuple[str, ...], str | None, str | None]:
    """DT_NEEDED, DT_RPATH and DT_RUNPATH of the (first) PT_DYNAMIC segment, as ldd reads them."""
    dynamic = next((s for s in segments if s[0] == PT_DYNAMIC), None)
    if dynamic is None:
        return (), None, None
    _, offset, _, filesz = dynamic
    entry = struct.Struct(lay.order + ("qQ" if lay.bits == 64 else "iI"))
    tags: list[tuple[int, int]] = []
    for tag, value in entry.iter_unpack(_read(f, offset, filesz - filesz % entry.size, "dynamic")):
        if tag == DT_NULL:
            break
        tags.append((tag, value))
    strtab = next((v for t, v in tags if t == DT_STRTAB), None)
    strsz = next((v for t, v in tags if t == DT_STRSZ), 0)
    if strtab is None:
        return (), None, None
    strings = _read(f, _file_offset(segments, strtab), strsz, "dynamic string table")
    needed = tuple(_string(strings, v) for t, v in tags if t == DT_NEEDED)
    rpath = runpath = None
    for tag, value in tags:
        if tag == DT_RPATH:
            rpath = _string(strings, value)
        elif tag == DT_RUNPATH:
            runpath = _string(strings, value)
    return needed, rpath, runpath


def _file_offset(segments: list[tuple[int, int, int, int]], address: int) -> int:
    for p_type, offset, vaddr, filesz in segments:
        if p_type == PT_LOAD and vaddr <= address < vaddr + filesz:
            return address - vaddr + offset
    raise ElfReadError(f"address {address:#x} is in no loaded segment")


def _string(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    if offset >= len(table) or end < 0:
        raise ElfReadError(f"string offset {offset} outside its table")
    return table[offset:end].decode("utf-8", "replace")


def _linked_strings(f: BinaryIO, sections: list, link: int) -> bytes:
    if not 0 < link < len(sections):
        raise ElfReadError(f"section link {link} names no section")
    _, offset, size, *_ = sections[link]
    return _read(f, offset, size, "string table")


def _version_needs(
    f: BinaryIO, lay: _Layout, offset: int, size: int, count: int, sections: list, link: int
) -> list[tuple[str, str, int]]:
    """(library, version name, version index) for each needed version."""
    data = _read(f, offset, size, ".gnu.version_r")
    strings = _linked_strings(f, sections, link)
    out = []
    at = 0
    for _ in range(count):
        _, cnt, file, aux, nxt = lay.unpack("HHIII", data, at)
        library = _string(strings, file)
        aux_at = at + aux
        for _ in range(cnt):
            _, _, index, name, aux_next = lay.unpack("IHHII", data, aux_at)
            out.append((library, _string(strings, name), index))
            aux_at += aux_next
        if nxt == 0:
            break
        at += nxt
    return out


def _symbols(
    f: BinaryIO, lay: _Layout, offset: int, size: int, entsize: int, sections: list, link: int
) -> list[Symbol]:
    strings = _linked_strings(f, sections, link)
    fmt = struct.Struct(lay.order + ("IBBHQQ" if lay.bits == 64 else "IIIBBH"))
    if entsize != fmt.size:
        raise ElfReadError(f".dynsym entries of {entsize} bytes, expected {fmt.size}")
    out = []
    for row in fmt.iter_unpack(_read(f, offset, size - size % entsize, ".dynsym")):
        if lay.bits == 64:
            name, info, _, shndx, _, _ = row
        else:
            name, _, _, info, _, shndx = row
        out.append(
            Symbol(_string(strings, name), shndx == SHN_UNDEF, info >> 4 == STB_WEAK, info & 0xF)
        )
    return out


def _x86_isa(notes: bytes, lay: _Layout, align: int, found: int | None) -> int | None:
    """GNU_PROPERTY_X86_ISA_1_NEEDED from an SHT_NOTE section's NT_GNU_PROPERTY_TYPE_0 note."""
    pad = 8 if align == 8 else 4
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, n_type = lay.unpack("III", notes, at)
        name_at = at + 12
        desc_at = _align(name_at + namesz, pad)  # offsets align, not sizes: 12 + 4 is 8-aligned
        name = notes[name_at : name_at + namesz].rstrip(b"\0")
        if n_type == NT_GNU_PROPERTY_TYPE_0 and name == b"GNU":
            prop_at, end = desc_at, min(desc_at + descsz, len(notes))
            while prop_at + 8 <= end:
                pr_type, pr_datasz = lay.unpack("II", notes, prop_at)
                if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED and pr_datasz == 4:
                    return lay.unpack("I", notes, prop_at + 8)[0]
                prop_at = _align(prop_at + 8 + pr_datasz, lay.bits // 8)
            return found
        at = _align(desc_at + descsz, pad)
    return found


def _align(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment
