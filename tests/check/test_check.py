"""The wheel checker against wheels assembled around real ELF, Mach-O, PE objects and a static archive."""

from __future__ import annotations

import json
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.tags import _mac_binary_formats
from packaging.version import Version
from support.native import build_natives
from support.wheels import assemble_wheel

from builder.check import RULES, WheelReadError, check_wheel
from builder.check.archs import data as arch_data
from builder.check.binaries import identify

ARM = "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64"
X86 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
EXT_ARM = "demo/_native.cpython-311-aarch64-linux-gnu.so"
PY = {"demo/__init__.py": b"from ._native import wf_len\n"}


@pytest.fixture(scope="session")
def natives(tmp_path_factory) -> dict[str, bytes]:
    built = build_natives(tmp_path_factory.mktemp("natives"))
    return {key: path.read_bytes() for key, path in built.items()}


@pytest.fixture
def wheel(tmp_path):
    def make(tag: str, files: dict[str, bytes], **kwargs) -> Path:
        out = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        return assemble_wheel(out, tag, {**PY, **files}, **kwargs)

    return make


def errors(path: Path) -> set[str]:
    return {f.rule for f in check_wheel(path).findings if f.severity == "error"}


def messages(path: Path, rule: str) -> list[str]:
    return [f.message for f in check_wheel(path).findings if f.rule == rule]


def read_bytes(data: bytes):
    return lambda offset, size: data[offset : offset + size]


# --- binary readers -----------------------------------------------------------------------------


def test_binaries_are_identified_by_content(natives):
    expect = {
        "elf_aarch64": ("ELF", ["aarch64"]),
        "elf_x86_64": ("ELF", ["x86_64"]),
        "elf_aarch64_obj": ("ELF", ["aarch64"]),
        "macho_arm64": ("Mach-O", ["arm64"]),
        "macho_x86_64": ("Mach-O", ["x86_64"]),
        "macho_universal2": ("Mach-O", ["x86_64", "arm64"]),
        "pe_amd64": ("PE", ["AMD64"]),
        "pe_arm64": ("PE", ["ARM64"]),
        "ar_aarch64": ("ar", []),
    }
    for key, (fmt, arch_list) in expect.items():
        binary = identify(key, read_bytes(natives[key]))
        assert binary is not None, key
        assert (binary.format, [s.arch for s in binary.slices]) == (fmt, arch_list), key
        assert binary.error is None


def test_macho_minimum_versions(natives):
    fat = identify("fat", read_bytes(natives["macho_universal2"]))
    assert fat.fat
    assert [s.min_macos for s in fat.slices] == [Version("10.13"), Version("11.0")]
    new = identify("x", read_bytes(natives["macho_x86_64_macos13"]))
    assert new.slices[0].min_macos == Version("13.0")


def test_big_endian_and_64bit_fat_headers(natives):
    # Byte-swap a thin header into its big-endian twin, and wrap a slice in a FAT_MAGIC_64 table.
    thin = natives["macho_arm64"]
    ncmds, sizeofcmds = struct.unpack_from("<II", thin, 16)
    be = bytearray(
        b"\xfe\xed\xfa\xcf" + struct.pack(">iiIIII", *struct.unpack_from("<iiIIII", thin, 4))
    )
    be += b"\0" * 4
    offset = 32
    for _ in range(ncmds):
        _, size = struct.unpack_from("<II", thin, offset)
        words = struct.unpack_from(f"<{size // 4}I", thin, offset)
        be += struct.pack(f">{size // 4}I", *words)
        offset += size
    assert len(be) == 32 + sizeofcmds
    binary = identify("be", read_bytes(bytes(be)))
    assert [(s.arch, s.min_macos) for s in binary.slices] == [("arm64", Version("11.0"))]

    fat64 = struct.pack(">II", 0xCAFEBABF, 1) + struct.pack(
        ">iiQQII", 0x0100000C, 0, 4096, len(thin), 12, 0
    )
    fat64 += b"\0" * (4096 - len(fat64)) + thin
    binary = identify("fat64", read_bytes(fat64))
    assert binary.fat and [s.arch for s in binary.slices] == ["arm64"]


@pytest.mark.parametrize(
    ("bits", "endian", "machine", "arch"),
    [
        (32, "<", 3, "i686"),
        (32, "<", 40, "armv7l"),
        (64, ">", 21, "ppc64"),
        (64, "<", 21, "ppc64le"),
        (64, ">", 22, "s390x"),
        (64, "<", 243, "riscv64"),
    ],
)
def test_elf_classes_and_byte_orders(bits, endian, machine, arch):
    ident = b"\x7fELF" + bytes([bits // 32, 1 if endian == "<" else 2, 1]) + b"\0" * 9
    header = ident + struct.pack(endian + "HH", 3, machine)  # e_type ET_DYN, e_machine
    assert [s.arch for s in identify("x", read_bytes(header)).slices] == [arch]


def test_pe_i386_header():
    dos = b"MZ" + b"\0" * 58 + struct.pack("<I", 64)
    pe = dos + b"PE\0\0" + struct.pack("<H", 0x014C)
    assert [s.arch for s in identify("x.dll", read_bytes(pe)).slices] == ["I386"]


def test_lookalikes_are_not_binaries():
    java_class = b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\0" * 64  # class file, major version 52
    assert identify("A.class", read_bytes(java_class)) is None
    assert identify("notes.txt", read_bytes(b"MZ is a text file, not a DOS program" * 4)) is None


def test_truncated_macho_is_reported_not_crashed(natives):
    binary = identify("cut", read_bytes(natives["macho_arm64"][:40]))
    assert binary.format == "Mach-O" and binary.error


def test_mac_formats_match_packaging():
    """The macOS multi-arch table means what pip's tag logic means."""
    for fmt, required in arch_data()["macos"].items():
        installs_on = {
            arch
            for arch in ("x86_64", "i386", "ppc", "ppc64", "arm64", "arm64e")
            for version in ((10, 4), (10, 5), (11, 0))
            if fmt in _mac_binary_formats(version, arch)
        }
        assert installs_on == set(required), fmt


def test_rule_ids_are_stable():
    assert all(rule.startswith("WF") and rule[5] == "-" for rule in RULES)
    assert len({rule[:5] for rule in RULES}) == len(RULES)


# --- rules: one passing and one failing wheel each ---------------------------------------------


def test_correct_manylinux_aarch64_wheel_passes(natives, wheel):
    report = check_wheel(wheel(ARM, {EXT_ARM: natives["elf_aarch64"]}))
    assert report.ok and report.findings == ()
    assert [(b.path, b.format) for b in report.binaries] == [(EXT_ARM, "ELF")]


def test_arch_mismatch(natives, wheel):
    assert (
        errors(wheel(X86, {EXT_ARM.replace("aarch64", "x86_64"): natives["elf_x86_64"]})) == set()
    )
    bad = wheel(ARM, {EXT_ARM: natives["elf_x86_64"]})
    assert errors(bad) == {"WF001-arch-mismatch"}
    (message,) = set(messages(bad, "WF001-arch-mismatch"))
    assert EXT_ARM in message and "x86_64" in message
    # a Mach-O in a Linux wheel, a PE for the wrong Windows
    assert "WF001-arch-mismatch" in errors(wheel(ARM, {"demo/x.so": natives["macho_arm64"]}))
    assert errors(wheel("py3-none-win_arm64", {"demo/x.dll": natives["pe_arm64"]})) == set()
    assert errors(wheel("py3-none-win_amd64", {"demo/x.dll": natives["pe_arm64"]})) == {
        "WF001-arch-mismatch"
    }


def test_universal2_needs_both_slices(natives, wheel):
    ext = "demo/_native.cpython-311-darwin.so"
    tag = "cp311-cp311-macosx_10_13_universal2"
    assert errors(wheel(tag, {ext: natives["macho_universal2"]})) == set()
    # The lying wheel PyPI has seen: universal2 on the label, x86_64 inside.
    bad = wheel(tag, {ext: natives["macho_x86_64"]})
    assert errors(bad) == {"WF002-missing-arch"}
    assert "arm64" in messages(bad, "WF002-missing-arch")[0]
    assert errors(wheel("cp311-cp311-macosx_11_0_arm64", {ext: natives["macho_x86_64"]})) == {
        "WF001-arch-mismatch"
    }


def test_pure_wheel_with_native_code(natives, wheel):
    assert errors(wheel("py3-none-any", {})) == set()
    # An executable without an extension is found by its content.
    bad = wheel("py3-none-any", {"demo/bin/tool": natives["elf_aarch64"]})
    assert errors(bad) == {"WF003-native-in-pure-wheel"}
    assert "demo/bin/tool" in messages(bad, "WF003-native-in-pure-wheel")[0]


def test_static_archives_are_listed_not_judged(natives, wheel):
    report = check_wheel(wheel("py3-none-any", {"demo/lib/libstatic.a": natives["ar_aarch64"]}))
    assert report.ok and [b.format for b in report.binaries] == ["ar"]


def test_macos_minimum_version(natives, wheel):
    ext = "demo/_native.cpython-311-darwin.so"
    assert errors(wheel("cp311-cp311-macosx_11_0_arm64", {ext: natives["macho_arm64"]})) == set()
    bad = wheel("cp311-cp311-macosx_10_13_x86_64", {ext: natives["macho_x86_64_macos13"]})
    assert errors(bad) == {"WF004-macos-min-version"}
    assert "13.0" in messages(bad, "WF004-macos-min-version")[0]


def test_glibc_symbol_versions_use_auditwheel_policy(natives, wheel):
    ext = {EXT_ARM: natives["elf_aarch64_glibc225"]}
    assert errors(wheel("cp311-cp311-manylinux_2_28_aarch64", ext)) == set()
    bad = wheel(ARM, ext)
    assert errors(bad) == {"WF005-linux-symbol-versions"}
    assert "GLIBC_2.25" in messages(bad, "WF005-linux-symbol-versions")[0]


def test_external_libraries_use_auditwheel_policy(natives, wheel):
    ext = {EXT_ARM: natives["elf_aarch64_uses_dep"]}
    bundled = wheel(ARM, {**ext, "demo/libwfdep.so": natives["libwfdep"]})
    assert errors(bundled) == set()
    bad = wheel(ARM, ext)
    assert errors(bad) == {"WF006-linux-policy"}
    assert "libwfdep.so" in messages(bad, "WF006-linux-policy")[0]


def test_extension_suffixes(natives, wheel):
    elf = natives["elf_aarch64"]
    x86_name = "demo/_native.cpython-311-x86_64-linux-gnu.so"
    bad = wheel(ARM, {x86_name: elf})
    assert errors(bad) == {"WF007-ext-suffix"}
    assert x86_name in messages(bad, "WF007-ext-suffix")[0]
    assert errors(wheel(ARM, {EXT_ARM.replace("311", "312"): elf})) == {"WF007-ext-suffix"}
    assert errors(wheel("cp311-abi3-manylinux_2_17_aarch64", {EXT_ARM: elf})) == {
        "WF007-ext-suffix"
    }
    assert errors(wheel("cp311-abi3-manylinux_2_17_aarch64", {"demo/_n.abi3.so": elf})) == set()
    dll = natives["pe_arm64"]
    assert errors(wheel("cp311-cp311-win_arm64", {"demo/_n.cp311-win_arm64.pyd": dll})) == set()
    assert errors(wheel("cp311-cp311-win_arm64", {"demo/_n.cp311-win_amd64.pyd": dll})) == {
        "WF007-ext-suffix"
    }


def test_wheel_tags_must_match_filename(natives, wheel):
    bad = wheel(ARM, {EXT_ARM: natives["elf_aarch64"]}, wheel_tags="cp311-cp311-linux_aarch64")
    assert errors(bad) == {"WF008-wheel-tags"}


def test_metadata_must_match_filename(wheel):
    assert errors(wheel("py3-none-any", {}, metadata_name="Demo")) == set()
    assert errors(wheel("py3-none-any", {}, metadata_version="1.0.1")) == {"WF009-metadata"}
    assert errors(wheel("py3-none-any", {}, metadata_name="other")) == {"WF009-metadata"}


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda rows: [r for r in rows if r[0] != "demo/__init__.py"], "not listed in RECORD"),
        (lambda rows: [(n, "sha256=AAAA", s) for n, _, s in rows], "RECORD says AAAA"),
        (lambda rows: [(n, h, "1") for n, h, _ in rows], "RECORD says 1"),
        (lambda rows: [*rows, ("demo/gone.py", "sha256=AAAA", "1")], "not in the wheel"),
        (lambda rows: [(n, "md5=AAAA", s) for n, _, s in rows], "with md5"),
    ],
)
def test_record(wheel, edit, says):
    bad = wheel("py3-none-any", {}, edit_record=edit)
    assert errors(bad) == {"WF010-record"}
    assert any(says in m for m in messages(bad, "WF010-record"))


def test_record_passes_stored_and_deflated(wheel, natives):
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2):
        files = {EXT_ARM: natives["elf_aarch64"], "demo/data.bin": bytes(range(256)) * 9000}
        assert check_wheel(wheel(ARM, files, compression=compression)).findings == ()


def test_unreadable_binary_header(natives, wheel):
    bad = wheel("cp311-cp311-macosx_11_0_arm64", {"demo/x.so": natives["macho_arm64"][:40]})
    assert errors(bad) == {"WF011-bad-binary"}


def test_unknown_platform_is_a_warning(wheel):
    report = check_wheel(wheel("cp311-cp311-plan9_mips", {}))
    assert report.ok and [f.rule for f in report.findings] == ["WF000-unknown-platform"]


def test_not_a_wheel_raises(tmp_path):
    broken = tmp_path / "demo-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(WheelReadError, match=r"demo-1\.0-py3-none-any\.whl"):
        check_wheel(broken)


# --- the command --------------------------------------------------------------------------------


def test_cli_exit_codes_and_json(natives, wheel, tmp_path):
    good = wheel(ARM, {EXT_ARM: natives["elf_aarch64"]})
    bad = wheel(ARM, {EXT_ARM: natives["elf_x86_64"]})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["wheelfarm", "check", *args], capture_output=True, text=True)

    assert run(str(good)).returncode == 0
    done = run(str(good.parent), str(bad))
    assert done.returncode == 1
    assert "WF001-arch-mismatch" in done.stdout
    done = run("--json", str(bad))
    (report,) = json.loads(done.stdout)["reports"]
    assert report["ok"] is False
    assert {f["rule"] for f in report["findings"]} == {"WF001-arch-mismatch"}
    assert report["findings"][0]["path"] == EXT_ARM
    broken = tmp_path / "demo-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    done = run(str(good), str(broken))
    assert done.returncode == 2
    assert "demo-1.0-py3-none-any.whl" in done.stdout


def test_libc_must_match_the_tag(natives, wheel):
    # A glibc-linked extension in a musllinux wheel (the passing musl case is a real wheel in e2e).
    bad = wheel("cp311-cp311-musllinux_1_2_aarch64", {"demo/_native.so": natives["elf_aarch64"]})
    assert errors(bad) == {"WF006-linux-policy"}
    assert "links against glibc" in messages(bad, "WF006-linux-policy")[0]


def test_duplicate_zip_members(tmp_path, wheel):
    good = wheel("py3-none-any", {})
    with zipfile.ZipFile(good, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("demo/__init__.py", b"")
    assert "the zip holds demo/__init__.py twice" in messages(good, "WF010-record")


def test_corrupt_member_is_an_error_naming_the_wheel(wheel):
    path = wheel("py3-none-any", {"demo/data.txt": b"hello wheel " * 1000})
    data = bytearray(path.read_bytes())
    start = data.index(b"demo/data.txt") + len(
        "demo/data.txt"
    )  # the local header's name, then data
    data[start + 2 : start + 8] = b"\xff" * 6
    path.write_bytes(bytes(data))
    with pytest.raises(WheelReadError, match=r"demo-1\.0-py3-none-any\.whl: demo/data\.txt"):
        check_wheel(path)


def test_paths_outside_the_wheel(wheel):
    bad = wheel("py3-none-any", {"../evil.py": b"x = 1\n"})
    assert "../evil.py would install outside its folder" in messages(bad, "WF010-record")


def test_check_index_downloads_and_checks_a_projects_wheels(natives, wheel, tmp_path):
    from support.static_index import FileSpec, StaticIndexServer, write_static_index

    good = wheel(ARM, {EXT_ARM: natives["elf_aarch64"]})
    # A wheel whose tag lies: tagged aarch64, holding an x86_64 extension.
    liar = wheel("cp312-cp312-manylinux_2_17_aarch64", {EXT_ARM: natives["elf_x86_64"]})
    old = wheel(ARM, {EXT_ARM: natives["elf_x86_64"]}, version="0.9")
    root = tmp_path / "index"
    write_static_index(
        root, {"demo": [FileSpec(w.name, w.read_bytes()) for w in (good, liar, old)]}
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["wheelfarm", "check", *args], capture_output=True, text=True)

    with StaticIndexServer(root) as server:
        done = run("--json", "--index", server.url, "demo")  # the newest release: 1.0
        reports = json.loads(done.stdout)["reports"]
        assert done.returncode == 1, done.stderr
        assert sorted(r["ok"] for r in reports) == [False, True]
        assert all(r["wheel"].startswith("http://127.0.0.1") for r in reports)
        liar_report = next(r for r in reports if not r["ok"])
        assert liar_report["wheel"].endswith(liar.name)
        assert run("--index", server.url, "demo==0.9").returncode == 1
        missing = run("--index", server.url, "no-such-project")
        assert missing.returncode == 2
        assert "no-such-project" in missing.stdout


def test_plan_check_upstream_rebuilds_a_lying_wheel(natives, wheel, tmp_path, monkeypatch):
    """The planner's --check-upstream runs this checker on the upstream wheel that covers a cell."""
    from support.static_index import FileSpec, StaticIndexServer, write_static_index

    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))
    sdist = FileSpec("demo-1.0.tar.gz", b"not needed by the planner")
    honest = wheel(ARM, {EXT_ARM: natives["elf_aarch64"]})
    liar = wheel("cp312-cp312-manylinux_2_17_aarch64", {EXT_ARM: natives["elf_x86_64"]})
    root = tmp_path / "index"
    files = [sdist, *(FileSpec(w.name, w.read_bytes()) for w in (honest, liar))]
    write_static_index(root, {"demo": files})
    recipe = tmp_path / "demo.toml"
    recipe.write_text(
        '[project]\nname = "demo"\npythons = ["3.11", "3.12"]\n'
        'targets = ["manylinux_2_17_aarch64"]\n[test]\nimports = ["demo"]\n'
    )
    with StaticIndexServer(root) as server:
        done = subprocess.run(
            ["wheelfarm", "plan", "--json", "--index", server.url, "--check-upstream", str(recipe)],
            capture_output=True,
            text=True,
        )
        trusting = subprocess.run(
            ["wheelfarm", "plan", "--json", "--index", server.url, str(recipe)],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stderr
    (job,) = json.loads(done.stdout)["include"]
    assert job["python"] == "3.12"
    assert "fails the architecture check" in job["reason"] and "WF001" in job["reason"]
    assert json.loads(trusting.stdout)["include"] == []  # without the check the tag is trusted


EXT_X86 = "demo/_native.cpython-311-x86_64-linux-gnu.so"


def test_instruction_set_level_uses_auditwheel_policy(natives, wheel):
    assert errors(wheel(X86, {EXT_X86: natives["elf_x86_64"]})) == set()
    bad = wheel(X86, {EXT_X86: natives["elf_x86_64_v3"]})
    assert errors(bad) == {"WF006-linux-policy"}
    assert "x86_64_v3 instruction set" in messages(bad, "WF006-linux-policy")[0]


def test_blacklisted_symbols_use_auditwheel_policy(natives, wheel):
    bad = wheel(X86, {EXT_X86: natives["elf_x86_64_uses_zlib_internal"]})
    assert errors(bad) == {"WF006-linux-policy"}
    assert "_tr_init from libz.so.1" in messages(bad, "WF006-linux-policy")[0]


def test_python2_floating_point_guard(natives, wheel):
    bad = wheel(X86, {EXT_X86: natives["elf_x86_64_pyfpe"]})
    assert errors(bad) == {"WF006-linux-policy"}
    assert "PyFPE_dummy" in messages(bad, "WF006-linux-policy")[0]


def test_bundled_library_finds_its_dependency_through_the_extension(natives, wheel):
    # auditwheel repair's layout: the extension's DT_RPATH leads to libwfmid, which has no RPATH of
    # its own and needs libwfdep beside it. Judged on this x86_64 host, where no aarch64 libc exists.
    files = {
        EXT_ARM: natives["elf_aarch64_uses_mid"],
        "demo/libwfmid.so": natives["libwfmid"],
        "demo/libwfdep.so": natives["libwfdep"],
    }
    assert errors(wheel(ARM, files)) == set()
    bad = wheel(ARM, {k: v for k, v in files.items() if k != "demo/libwfdep.so"})
    assert errors(bad) == {"WF006-linux-policy"}
    assert all("libwfdep.so" in m for m in messages(bad, "WF006-linux-policy"))


def test_truncated_elf_tables_are_a_bad_binary(natives, wheel):
    # The ELF header is whole (the architecture reads fine); the tables behind it are cut off.
    bad = wheel(ARM, {EXT_ARM: natives["elf_aarch64"][:300]})
    assert errors(bad) == {"WF011-bad-binary"}
    assert "unreadable ELF tables" in messages(bad, "WF011-bad-binary")[0]
