"""A struct reader for what macOS looks at when it loads a Mach-O: load commands, symbols, signature.

`binaries.py` reads only the headers (architecture, minimum macOS) from the first bytes of a member;
this module reads a whole slice: segments, the dylibs it links (in ordinal order), LC_RPATH entries,
LC_ID_DYLIB, LC_CODE_SIGNATURE, and the symbol table (undefined symbols with their library ordinal,
defined external symbols). Offsets in a slice are relative to the slice's own Mach-O header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from . import archs
from .binaries import BinaryFormatError

MH_MAGIC_64 = 0xFEEDFACF
MH_MAGIC = 0xFEEDFACE
MH_TWOLEVEL = 0x80
MH_DYLIB, MH_BUNDLE, MH_EXECUTE = 6, 8, 2

LC_SEGMENT, LC_SEGMENT_64 = 0x1, 0x19
LC_SYMTAB = 0x2
LC_ID_DYLIB = 0xD
LC_CODE_SIGNATURE = 0x1D
LC_RPATH = 0x8000001C
LC_DYLD_INFO, LC_DYLD_INFO_ONLY = 0x22, 0x80000022
LC_DYLD_CHAINED_FIXUPS = 0x80000034
# Commands that make the image load a dylib; their order gives the two-level library ordinals.
DYLIB_COMMANDS = {
    0xC: "LC_LOAD_DYLIB",
    0x80000018: "LC_LOAD_WEAK_DYLIB",
    0x8000001F: "LC_REEXPORT_DYLIB",
    0x20: "LC_LAZY_LOAD_DYLIB",
    0x80000023: "LC_LOAD_UPWARD_DYLIB",
}
WEAK_DYLIB = 0x80000018

N_STAB, N_TYPE, N_EXT = 0xE0, 0x0E, 0x01
N_UNDF, N_SECT, N_INDR = 0x0, 0xE, 0xA
N_WEAK_REF = 0x40
SELF_LIBRARY_ORDINAL, WEAK_LOOKUP_ORDINAL, DYNAMIC_LOOKUP_ORDINAL, EXECUTABLE_ORDINAL = (
    0,
    0xFD,
    0xFE,
    0xFF,
)
VM_PROT_EXECUTE = 0x4


@dataclass(frozen=True)
class Segment:
    name: str
    fileoff: int
    filesize: int
    initprot: int


@dataclass(frozen=True)
class Dylib:
    command: str  # LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, ...
    path: str

    @property
    def weak(self) -> bool:
        return self.command == "LC_LOAD_WEAK_DYLIB"


@dataclass(frozen=True)
class Undefined:
    name: str  # as in the symbol table, with the leading underscore of C names
    ordinal: int  # 1-based index into `dylibs`, or one of the special ordinals
    weak: bool  # N_WEAK_REF: may be missing at load time


@dataclass(frozen=True)
class MachO:
    """One thin Mach-O (a slice of a fat file): what dyld and the kernel read."""

    arch: str
    filetype: int
    flags: int
    is64: bool
    size: int  # bytes of the slice
    segments: tuple[Segment, ...]
    dylibs: tuple[Dylib, ...]
    rpaths: tuple[str, ...]
    install_name: str | None
    signature: tuple[int, int] | None  # (dataoff, datasize) of LC_CODE_SIGNATURE
    undefined: tuple[Undefined, ...]  # from the symbol table
    exports: frozenset[str]  # defined external symbols
    # What dyld binds, with the ordinals it uses: from the bind opcodes (LC_DYLD_INFO) or the
    # chained fixups' import table. None when the binary has neither (then `undefined` is used).
    binds: tuple[Undefined, ...] | None = None

    @property
    def two_level(self) -> bool:
        return bool(self.flags & MH_TWOLEVEL)

    @property
    def imports(self) -> tuple[Undefined, ...]:
        """The symbols dyld resolves at load time, each with the library ordinal dyld uses.

        zig's linker leaves n_desc's ordinal at 0 in the symbol table and writes the real one (flat
        lookup for Python's symbols) only into the bind opcodes, so those are the truth.
        """
        return self.binds if self.binds is not None else self.undefined

    def segment(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)


def slices(data: bytes) -> list[tuple[bytes, MachO]]:
    """Every thin slice of a Mach-O file (one for a thin file), each with its own bytes."""
    if data[:4] in (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"):
        is64 = data[3] == 0xBF
        (nfat,) = struct.unpack_from(">I", data, 4)
        size = 32 if is64 else 20
        out = []
        for i in range(nfat):
            if is64:
                _, _, offset, length, _, _ = struct.unpack_from(">iiQQII", data, 8 + i * size)
            else:
                _, _, offset, length, _ = struct.unpack_from(">iiIII", data, 8 + i * size)
            if offset + length > len(data):
                raise BinaryFormatError(f"fat slice {i} runs past the end of the file")
            part = data[offset : offset + length]
            out.append((part, parse(part)))
        return out
    return [(data, parse(data))]


def _cstr(data: bytes, offset: int, end: int | None = None) -> str:
    stop = data.find(b"\0", offset, end if end is not None else len(data))
    if stop < 0:
        stop = end if end is not None else len(data)
    return data[offset:stop].decode("utf-8", "replace")


def parse(data: bytes) -> MachO:
    """Read one thin Mach-O slice (little-endian: every arm64/x86_64 binary is)."""
    if len(data) < 28:
        raise BinaryFormatError("truncated Mach-O header")
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic not in (MH_MAGIC, MH_MAGIC_64):
        raise BinaryFormatError(f"not a little-endian Mach-O slice (magic {magic:#x})")
    is64 = magic == MH_MAGIC_64
    _, cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags = struct.unpack_from(
        "<IiiIIII", data, 0
    )
    offset = 32 if is64 else 28
    end = offset + sizeofcmds
    if end > len(data):
        raise BinaryFormatError("load commands run past the end of the file")
    segments: list[Segment] = []
    dylibs: list[Dylib] = []
    rpaths: list[str] = []
    install_name = None
    signature = None
    symtab = None
    binds: list[Undefined] | None = None
    for _ in range(ncmds):
        if offset + 8 > end:
            raise BinaryFormatError(f"load command at {offset} runs past sizeofcmds")
        cmd, cmdsize = struct.unpack_from("<II", data, offset)
        if cmdsize < 8 or offset + cmdsize > end:
            raise BinaryFormatError(f"bad load command size {cmdsize} at {offset}")
        cmd_end = offset + cmdsize
        if cmd == LC_SEGMENT_64:
            name, _vmaddr, _vmsize, fileoff, filesize, _maxprot, initprot = struct.unpack_from(
                "<16sQQQQii", data, offset + 8
            )
            segments.append(Segment(name.rstrip(b"\0").decode(), fileoff, filesize, initprot))
        elif cmd == LC_SEGMENT:
            name, _vmaddr, _vmsize, fileoff, filesize, _maxprot, initprot = struct.unpack_from(
                "<16sIIIIii", data, offset + 8
            )
            segments.append(Segment(name.rstrip(b"\0").decode(), fileoff, filesize, initprot))
        elif cmd in DYLIB_COMMANDS or cmd == LC_ID_DYLIB:
            (name_off,) = struct.unpack_from("<I", data, offset + 8)
            path = _cstr(data, offset + name_off, cmd_end)
            if cmd == LC_ID_DYLIB:
                install_name = path
            else:
                dylibs.append(Dylib(DYLIB_COMMANDS[cmd], path))
        elif cmd == LC_RPATH:
            (path_off,) = struct.unpack_from("<I", data, offset + 8)
            rpaths.append(_cstr(data, offset + path_off, cmd_end))
        elif cmd == LC_CODE_SIGNATURE:
            signature = struct.unpack_from("<II", data, offset + 8)
        elif cmd == LC_SYMTAB:
            symtab = struct.unpack_from("<IIII", data, offset + 8)
        elif cmd in (LC_DYLD_INFO, LC_DYLD_INFO_ONLY):
            _, _, bind_off, bind_size, _, _, lazy_off, lazy_size = struct.unpack_from(
                "<8I", data, offset + 8
            )
            binds = [*_bind_opcodes(data, bind_off, bind_size, is64)]
            binds += _bind_opcodes(data, lazy_off, lazy_size, is64)
        elif cmd == LC_DYLD_CHAINED_FIXUPS:
            fix_off, fix_size = struct.unpack_from("<II", data, offset + 8)
            binds = _chained_imports(data, fix_off, fix_size)
        offset = cmd_end
    undefined, exports = _symbols(data, symtab, is64) if symtab else ((), frozenset())
    return MachO(
        arch=archs.macho_arch(cputype, cpusubtype),
        filetype=filetype,
        flags=flags,
        is64=is64,
        size=len(data),
        segments=tuple(segments),
        dylibs=tuple(dylibs),
        rpaths=tuple(rpaths),
        install_name=install_name,
        signature=signature,
        undefined=undefined,
        exports=exports,
        binds=None if binds is None else tuple(dict.fromkeys(binds)),
    )


def _special(ordinal: int, bits: int) -> int:
    """Signed special ordinals (-1 executable, -2 flat lookup, -3 weak lookup) as n_desc bytes."""
    if ordinal >= (1 << bits) - 15:  # negative in `bits` bits
        return 0x100 + (ordinal - (1 << bits))
    return ordinal


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise BinaryFormatError("bind opcodes run past the end of the file")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _bind_opcodes(data: bytes, offset: int, size: int, is64: bool) -> list[Undefined]:
    """The (symbol, ordinal, weak) triples of a dyld bind or lazy-bind opcode stream."""
    if offset + size > len(data):
        raise BinaryFormatError("bind opcodes run past the end of the file")
    out: list[Undefined] = []
    pos, end = offset, offset + size
    ordinal, name, weak = 0, "", False
    while pos < end:
        byte = data[pos]
        pos += 1
        op, imm = byte & 0xF0, byte & 0x0F
        if op == 0x00:  # DONE (the lazy table separates its entries with it)
            continue
        if op == 0x10:  # SET_DYLIB_ORDINAL_IMM
            ordinal = imm
        elif op == 0x20:  # SET_DYLIB_ORDINAL_ULEB
            ordinal, pos = _uleb(data, pos)
        elif op == 0x30:  # SET_DYLIB_SPECIAL_IMM: 0, -1 executable, -2 flat, -3 weak lookup
            ordinal = 0 if imm == 0 else 0x100 - (0x10 - imm)
        elif op == 0x40:  # SET_SYMBOL_TRAILING_FLAGS_IMM + name
            stop = data.index(b"\0", pos)
            name = data[pos:stop].decode("utf-8", "replace")
            weak = bool(imm & 0x1)
            pos = stop + 1
        elif op in (0x50, 0xB0):  # SET_TYPE_IMM; DO_BIND_ADD_ADDR_IMM_SCALED
            if op == 0xB0:
                out.append(Undefined(name, ordinal, weak))
        elif op in (0x60, 0x70, 0x80):  # SET_ADDEND_SLEB, SET_SEGMENT_AND_OFFSET_ULEB, ADD_ADDR
            _, pos = _uleb(data, pos)
        elif op in (0x90, 0xA0):  # DO_BIND, DO_BIND_ADD_ADDR_ULEB
            if op == 0xA0:
                _, pos = _uleb(data, pos)
            out.append(Undefined(name, ordinal, weak))
        elif op == 0xC0:  # DO_BIND_ULEB_TIMES_SKIPPING_ULEB
            _, pos = _uleb(data, pos)
            _, pos = _uleb(data, pos)
            out.append(Undefined(name, ordinal, weak))
        elif op == 0xD0:  # THREADED: SET_BIND_ORDINAL_TABLE_SIZE_ULEB (imm 0) or APPLY
            if imm == 0:
                _, pos = _uleb(data, pos)
        else:
            raise BinaryFormatError(f"unknown bind opcode {byte:#x} at {pos - 1}")
    return out


def _chained_imports(data: bytes, offset: int, size: int) -> list[Undefined]:
    """The import table of LC_DYLD_CHAINED_FIXUPS (formats 1-3 of dyld_chained_import*)."""
    if offset + 28 > len(data) or offset + size > len(data):
        raise BinaryFormatError("chained fixups run past the end of the file")
    _, _, imports_off, symbols_off, count, fmt, _ = struct.unpack_from("<7I", data, offset)
    out = []
    base = offset + imports_off
    names = offset + symbols_off
    for i in range(count):
        if fmt == 1:
            (raw,) = struct.unpack_from("<I", data, base + 4 * i)
            ordinal, weak, name_off = _special(raw & 0xFF, 8), raw >> 8 & 1, raw >> 9
        elif fmt == 2:
            (raw,) = struct.unpack_from("<I", data, base + 8 * i)
            ordinal, weak, name_off = _special(raw & 0xFF, 8), raw >> 8 & 1, raw >> 9
        elif fmt == 3:
            (raw,) = struct.unpack_from("<Q", data, base + 16 * i)
            ordinal, weak, name_off = _special(raw & 0xFFFF, 16), raw >> 16 & 1, raw >> 32
        else:
            raise BinaryFormatError(f"unknown chained import format {fmt}")
        out.append(Undefined(_cstr(data, names + name_off, offset + size), ordinal, bool(weak)))
    return out


def _symbols(
    data: bytes, symtab: tuple[int, int, int, int], is64: bool
) -> tuple[tuple[Undefined, ...], frozenset[str]]:
    symoff, nsyms, stroff, strsize = symtab
    entry = struct.Struct("<IBBHQ" if is64 else "<IBBHI")
    if symoff + nsyms * entry.size > len(data) or stroff + strsize > len(data):
        raise BinaryFormatError("symbol table runs past the end of the file")
    undefined = []
    exports = set()
    for i in range(nsyms):
        strx, ntype, _sect, desc, value = entry.unpack_from(data, symoff + i * entry.size)
        if ntype & N_STAB or not ntype & N_EXT:
            continue
        kind = ntype & N_TYPE
        if strx >= strsize:
            raise BinaryFormatError(f"symbol {i} names string {strx} beyond the string table")
        name = _cstr(data, stroff + strx, stroff + strsize)
        if kind == N_UNDF and value == 0:
            undefined.append(Undefined(name, (desc >> 8) & 0xFF, bool(desc & N_WEAK_REF)))
        elif kind in (N_SECT, N_INDR) or kind == 0x2:  # defined in a section, re-exported, absolute
            exports.add(name)
    return tuple(undefined), frozenset(exports)
