"""The macOS load-time checks (signature, symbols, load paths) on Mach-Os zig links here.

Each broken variant is a real binary with one thing wrong, and the checker must name that rule;
LIEF, an independent Mach-O parser, agrees with our reader on what it finds.
"""

from __future__ import annotations

import struct

import pytest
from support.macos import build_macos_natives
from support.wheels import assemble_wheel

from builder.check import check_wheel, codesign, macho

TAG = "cp311-cp311-macosx_11_0_arm64"
EXT = "demo/_native.cpython-311-darwin.so"
PY = {"demo/__init__.py": b"from ._native import wf_len\n"}


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, bytes]:
    paths = build_macos_natives(tmp_path_factory.mktemp("macos"))
    return {k: p.read_bytes() for k, p in paths.items()}


@pytest.fixture
def wheel(tmp_path):
    def make(files: dict[str, bytes], tag: str = TAG):
        out = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        return assemble_wheel(out, tag, {**PY, **files})

    return make


def findings(path, severity="error") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in check_wheel(path).findings:
        if f.severity == severity:
            out.setdefault(f.rule, []).append(f.message)
    return out


def test_a_zig_extension_passes_with_evidence(built, wheel):
    report = check_wheel(wheel({EXT: built["ext"]}))
    assert report.findings == ()
    (line,) = report.evidence
    assert "ad-hoc sha256 signature" in line and "page hashes" in line
    # PyLong_FromLong and PyModule_Create2 come from CPython 3.11; strlen and dyld_stub_binder
    # from libSystem
    assert "4 of 4 imported symbols resolved (2 in CPython 3.11" in line
    assert "2 in libSystem.tbd" in line


def test_flipped_byte_in_a_signed_page(built, wheel):
    data = bytearray(built["ext"])
    m = macho.parse(bytes(data))
    text = m.segment("__TEXT")
    data[text.fileoff + text.filesize - 16] ^= 0xFF  # code, well below the signature
    errors = findings(wheel({EXT: bytes(data)}))
    assert set(errors) == {"WF013-macos-code-signature"}
    assert "does not match its sha256 hash" in errors["WF013-macos-code-signature"][0]
    with pytest.raises(codesign.SignatureError, match=r"page \d+"):
        codesign.verify(bytes(data), m)


def test_a_changed_code_directory_field_is_caught(built):
    data = bytearray(built["ext"])
    m = macho.parse(bytes(data))
    dataoff, _ = m.signature
    # the SuperBlob's first index entry points at the CodeDirectory; bump its codeLimit
    (cd_offset,) = struct.unpack_from(">I", data, dataoff + 16)
    limit_at = dataoff + cd_offset + 32
    (limit,) = struct.unpack_from(">I", data, limit_at)
    struct.pack_into(">I", data, limit_at, limit - 1)
    with pytest.raises(codesign.SignatureError, match="covers"):
        codesign.verify(bytes(data), m)


def test_unsigned_arm64_is_refused(built):
    data = built["ext"]
    m = macho.parse(data)
    unsigned = macho.MachO(**{**m.__dict__, "signature": None})
    with pytest.raises(codesign.SignatureError, match="unsigned arm64"):
        codesign.verify(data, unsigned)


def test_missing_symbol(built, wheel):
    errors = findings(wheel({EXT: built["ext_missing"]}))
    assert set(errors) == {"WF014-macos-undefined-symbol"}
    assert "_PyFoo_Bar" in errors["WF014-macos-undefined-symbol"][0]


def test_x86_64_slice_and_minos_above_the_tag(built, wheel):
    assert set(findings(wheel({EXT: built["ext_x86_64"]}))) == {"WF001-arch-mismatch"}
    errors = findings(wheel({EXT: built["ext_macos13"]}))
    assert set(errors) == {"WF004-macos-min-version"}
    assert "needs macOS 13.0" in errors["WF004-macos-min-version"][0]


def test_absolute_path_to_a_build_folder(built, wheel):
    errors = findings(wheel({EXT: built["ext_uses_lib"]}))
    assert set(errors) == {"WF015-macos-load-path"}
    assert "/build/lib/libwfdep.dylib is an absolute path" in errors["WF015-macos-load-path"][0]


def test_grafted_library_resolves_and_its_symbols_too(built, wheel):
    good = {EXT: built["ext_uses_lib_rel"], "demo/.dylibs/libwfdep.dylib": built["lib_rel"]}
    report = check_wheel(wheel(good))
    assert report.findings == ()
    ext_line = next(e for e in report.evidence if EXT in e)
    assert "1 in the wheel's dylibs" in ext_line
    # without the library in the wheel, the @loader_path load names nothing
    errors = findings(wheel({EXT: built["ext_uses_lib_rel"]}))
    assert "WF015-macos-load-path" in errors
    assert "names no file in the wheel" in errors["WF015-macos-load-path"][0]


def test_lief_agrees_with_our_reader(built):
    lief = pytest.importorskip("lief")
    for key in ("ext", "ext_uses_lib", "ext_uses_lib_rel"):
        ours = macho.parse(built[key])
        theirs = lief.MachO.parse(list(built[key])).at(0)
        id_dylib = lief.MachO.LoadCommand.TYPE.ID_DYLIB
        libraries = [lib.name for lib in theirs.libraries if lib.command != id_dylib]
        assert libraries == [d.path for d in ours.dylibs]
        sig = theirs.code_signature
        assert (sig.data_offset, sig.data_size) == ours.signature
        # the ordinals dyld binds with: LIEF says -2 for flat lookup, we keep n_desc's 0xfe
        binds = {(b.symbol.name, b.library_ordinal % 256) for b in theirs.bindings}
        assert binds == {(i.name, i.ordinal) for i in ours.imports}
        assert ("_PyLong_FromLong", macho.DYNAMIC_LOOKUP_ORDINAL) in binds
        assert lief.MachO.check_layout(theirs)[0]
