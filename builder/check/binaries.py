"""Find binaries by their magic bytes and read their architectures from the headers alone.

ELF (32/64-bit, either byte order), Mach-O (thin 32/64-bit in either byte order, fat/universal with
FAT_MAGIC and FAT_MAGIC_64), PE/COFF and ar static archives. Readers take a `read(offset, size)`
callable so that a member of a zip is read only as far as its headers go.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from packaging.version import Version

from . import archs

Read = Callable[[int, int], bytes]

# The first bytes of a member that are enough to say whether it may be a binary.
MAGIC_SIZE = 8

_MACHO_THIN = {
    b"\xfe\xed\xfa\xce": (">", 28),  # MH_MAGIC, big-endian 32-bit
    b"\xce\xfa\xed\xfe": ("<", 28),  # MH_CIGAM: little-endian 32-bit
    b"\xfe\xed\xfa\xcf": (">", 32),  # MH_MAGIC_64
    b"\xcf\xfa\xed\xfe": ("<", 32),  # MH_CIGAM_64
}
_FAT_MAGIC = b"\xca\xfe\xba\xbe"  # always big-endian; shared with Java .class files
_FAT_MAGIC_64 = b"\xca\xfe\xba\xbf"
_AR_MAGICS = (b"!<arch>\n", b"!<thin>\n")

LC_VERSION_MIN_MACOSX = 0x24
LC_BUILD_VERSION = 0x32
PLATFORM_MACOS = 1
_MAX_LOAD_COMMANDS = 1 << 24  # sizeofcmds above this is a corrupt header, not a real binary


class BinaryFormatError(ValueError):
    """A member starts like a binary but its headers do not hold together."""


@dataclass(frozen=True)
class Slice:
    """One architecture in a binary; Mach-O slices also carry their minimum macOS."""

    arch: str
    min_macos: Version | None = None


@dataclass(frozen=True)
class Binary:
    path: str  # inside the wheel
    format: str  # "ELF", "Mach-O", "PE" or "ar"
    slices: tuple[Slice, ...] = ()
    fat: bool = False
    error: str | None = None  # set when the magic matched but the headers are unreadable

    @property
    def archs(self) -> frozenset[str]:
        return frozenset(s.arch for s in self.slices)

    @property
    def judged(self) -> bool:
        """Static archives are listed but not judged (they are build inputs, not loaded code)."""
        return self.format != "ar" and self.error is None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "format": self.format,
            "fat": self.fat,
            "archs": [s.arch for s in self.slices],
            "min_macos": [str(s.min_macos) if s.min_macos else None for s in self.slices],
            "error": self.error,
        }


def may_be_binary(head: bytes) -> bool:
    """True when the first MAGIC_SIZE bytes of a file carry a binary magic (checked further later)."""
    magic = head[:4]
    if magic == b"\x7fELF" or magic in _MACHO_THIN or head[:8] in _AR_MAGICS:
        return True
    if magic in (_FAT_MAGIC, _FAT_MAGIC_64):
        return True
    return head[:2] == b"MZ"


def identify(path: str, read: Read) -> Binary | None:
    """The binary at `path` (bytes through `read`), or None when it is not one after all."""
    head = read(0, MAGIC_SIZE)
    magic = head[:4]
    try:
        if magic == b"\x7fELF":
            return Binary(path, "ELF", (_elf_slice(read),))
        if magic in _MACHO_THIN:
            return Binary(path, "Mach-O", (_macho_slice(read, 0),))
        if magic in (_FAT_MAGIC, _FAT_MAGIC_64):
            (nfat,) = struct.unpack(">I", head[4:8])
            # A Java class file starts with the same CAFEBABE followed by its version (major >= 45);
            # a fat Mach-O has a handful of slices. Same test as file(1) and Apple's tools.
            if not 0 < nfat < 45:
                return None
            return Binary(path, "Mach-O", _fat_slices(read, magic == _FAT_MAGIC_64, nfat), fat=True)
        if head[:8] in _AR_MAGICS:
            return Binary(path, "ar")
        if head[:2] == b"MZ":
            pe = _pe_slice(read)
            return None if pe is None else Binary(path, "PE", (pe,))
    except (BinaryFormatError, struct.error) as exc:
        fmt = "ELF" if magic == b"\x7fELF" else "PE" if head[:2] == b"MZ" else "Mach-O"
        return Binary(path, fmt, error=str(exc) or "truncated header")
    return None


def _exact(read: Read, offset: int, size: int, what: str) -> bytes:
    data = read(offset, size)
    if len(data) != size:
        raise BinaryFormatError(f"truncated {what} at offset {offset}")
    return data


def _elf_slice(read: Read) -> Slice:
    ident = _exact(read, 0, 20, "ELF header")
    bits = {1: 32, 2: 64}.get(ident[4])
    endian = {1: "little", 2: "big"}.get(ident[5])
    if bits is None or endian is None:
        raise BinaryFormatError(f"bad ELF class {ident[4]} or data encoding {ident[5]}")
    (machine,) = struct.unpack("<H" if endian == "little" else ">H", ident[18:20])
    return Slice(archs.elf_arch(machine, bits, endian))


def _macho_slice(read: Read, base: int) -> Slice:
    magic = _exact(read, base, 4, "Mach-O header")
    if magic not in _MACHO_THIN:
        raise BinaryFormatError(f"no Mach-O header at offset {base}")
    order, header_size = _MACHO_THIN[magic]
    header = _exact(read, base, header_size, "Mach-O header")
    _, cputype, cpusubtype, _, ncmds, sizeofcmds = struct.unpack(order + "IiiIII", header[:24])
    if sizeofcmds > _MAX_LOAD_COMMANDS:
        raise BinaryFormatError(f"implausible sizeofcmds {sizeofcmds}")
    commands = _exact(read, base + header_size, sizeofcmds, "Mach-O load commands")
    return Slice(archs.macho_arch(cputype, cpusubtype), _min_macos(commands, ncmds, order))


def _min_macos(commands: bytes, ncmds: int, order: str) -> Version | None:
    offset = 0
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from(order + "II", commands, offset)
        if cmdsize < 8 or offset + cmdsize > len(commands):
            raise BinaryFormatError(f"bad load command size {cmdsize} at {offset}")
        if cmd == LC_BUILD_VERSION:
            platform, minos = struct.unpack_from(order + "II", commands, offset + 8)
            if platform == PLATFORM_MACOS:
                return _nibbles(minos)
        elif cmd == LC_VERSION_MIN_MACOSX:
            (version,) = struct.unpack_from(order + "I", commands, offset + 8)
            return _nibbles(version)
        offset += cmdsize
    return None


def _nibbles(value: int) -> Version:
    """Mach-O packs X.Y.Z as xxxx.yy.zz in one 32-bit word."""
    return Version(f"{value >> 16}.{(value >> 8) & 0xFF}.{value & 0xFF}")


def _fat_slices(read: Read, is64: bool, nfat: int) -> tuple[Slice, ...]:
    entry_size = 32 if is64 else 20
    table = _exact(read, 8, nfat * entry_size, "fat_arch table")
    slices = []
    for i in range(nfat):
        if is64:
            cputype, cpusubtype, offset, _size, _align, _ = struct.unpack_from(
                ">iiQQII", table, i * entry_size
            )
        else:
            cputype, cpusubtype, offset, _size, _align = struct.unpack_from(
                ">iiIII", table, i * entry_size
            )
        inner = _macho_slice(read, offset)
        if inner.arch != archs.macho_arch(cputype, cpusubtype):
            raise BinaryFormatError(
                f"fat_arch {i} says {archs.macho_arch(cputype, cpusubtype)} but its slice is {inner.arch}"
            )
        slices.append(inner)
    return tuple(slices)


def _pe_slice(read: Read) -> Slice | None:
    dos = read(0, 64)
    if len(dos) < 64:
        return None
    (e_lfanew,) = struct.unpack_from("<I", dos, 0x3C)
    signature = read(e_lfanew, 6)
    if len(signature) < 6 or signature[:4] != b"PE\0\0":
        return None  # an MZ-only DOS program, or text that happens to start with "MZ"
    (machine,) = struct.unpack_from("<H", signature, 4)
    return Slice(archs.pe_arch(machine))
