"""Real native objects for the checker's tests: zig cross-compiles ELF, Mach-O and PE files here.

zig's caches live in builder.common.paths.cache_dir()/"zig" (the builder's toolchain uses the same folder), so
only the first run pays for building glibc/libSystem stubs. A fat Mach-O is written by hand from two
thin ones: the format is a big-endian header, one fat_arch entry per slice, and page-aligned slices.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from builder.common.paths import cache_dir

EXTENSION_C = textwrap.dedent(
    """
    #include <string.h>
    void *PyInit__native(void) { return 0; }
    unsigned long wf_len(const char *s) { return strlen(s); }
    """
)
# getrandom() appeared in glibc 2.25: a binary using it needs more than manylinux_2_17 gives.
NEW_GLIBC_C = EXTENSION_C + textwrap.dedent(
    """
    #include <sys/random.h>
    long wf_rand(void *buf, unsigned long n) { return getrandom(buf, n, 0); }
    """
)
DEP_C = "int wf_dep(int x) { return 2 * x; }\n"
USES_DEP_C = EXTENSION_C + "int wf_dep(int x);\nint wf_twice(int x) { return wf_dep(x); }\n"
# A bundled library that needs another bundled one and has no RPATH of its own, as auditwheel repair
# leaves them: the loader finds libwfdep through the extension's DT_RPATH.
MID_C = "int wf_dep(int x);\nint wf_mid(int x) { return wf_dep(x) + 1; }\n"
USES_MID_C = EXTENSION_C + "int wf_mid(int x);\nint wf_thrice(int x) { return wf_mid(x); }\n"
# GNU_PROPERTY_X86_ISA_1_NEEDED = baseline | x86-64-v3, in a note section of its own name: lld rewrites
# .note.gnu.property (keeping only its feature bits), and readers take any SHT_NOTE section.
ISA_V3_C = EXTENSION_C + textwrap.dedent(
    """
    __asm__(
        ".section .note.wf_isa,\\"a\\",@note\\n.p2align 3\\n"
        ".long 4\\n.long 16\\n.long 5\\n.asciz \\"GNU\\"\\n"
        ".long 0xc0008002\\n.long 4\\n.long 5\\n.long 0\\n.text\\n");
    """
)
# A stand-in libz.so.1 and an extension using _tr_init from it: a zlib internal the manylinux
# policies blacklist (libz is whitelisted, its private symbols are not).
FAKE_ZLIB_C = "void _tr_init(void *s) { (void)s; }\nint zlibVersion(void) { return 1; }\n"
USES_ZLIB_INTERNAL_C = EXTENSION_C + "void _tr_init(void *s);\nvoid wf_z(void) { _tr_init(0); }\n"
# Python 2's floating point guard, gone since Python 3.7: no manylinux policy allows it.
USES_PYFPE_C = (
    EXTENSION_C + "extern void PyFPE_dummy(void *);\nvoid wf_f(void) { PyFPE_dummy(0); }\n"
)
# A DLL without the C runtime: its own entry point, nothing to link from mingw.
DLL_C = textwrap.dedent(
    """
    int DllMainCRTStartup(void *h, unsigned reason, void *r) { return 1; }
    __declspec(dllexport) int wf_add(int a, int b) { return a + b; }
    """
)


def zig_env() -> dict[str, str]:
    zig_cache = cache_dir() / "zig"
    zig_cache.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "ZIG_GLOBAL_CACHE_DIR": str(zig_cache),
        "ZIG_LOCAL_CACHE_DIR": str(zig_cache),
    }


def zig_cc(out: Path, target: str, source: str, *args: str) -> Path:
    """Compile `source` (C text) for the zig `target` into `out` with extra compiler `args`."""
    src = out.with_suffix(out.suffix + ".c")
    src.write_text(source)
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", target, "-O2", *args, "-o", str(out)]
    done = subprocess.run(
        [*cmd, str(src)], cwd=out.parent, env=zig_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"zig cc -target {target} failed:\n{done.stderr}")
    return out


def zig_ar(out: Path, *objects: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "ziglang", "ar", "rcs", str(out), *map(str, objects)],
        env=zig_env(),
        check=True,
        capture_output=True,
    )
    return out


def fat_macho(slices: Sequence[bytes], align_log2: int = 14) -> bytes:
    """A fat (universal) Mach-O holding the thin Mach-O `slices` (FAT_MAGIC, 32-bit offsets)."""
    align = 1 << align_log2
    entries = []
    body = b""
    offset = align  # the header and table fit in the first page
    for thin in slices:
        (magic,) = struct.unpack("<I", thin[:4])
        order = "<" if magic in (0xFEEDFACE, 0xFEEDFACF) else ">"
        cputype, cpusubtype = struct.unpack(order + "ii", thin[4:12])
        entries.append(struct.pack(">iiIII", cputype, cpusubtype, offset, len(thin), align_log2))
        padded = thin + b"\0" * (-len(thin) % align)
        body += padded
        offset += len(padded)
    header = struct.pack(">II", 0xCAFEBABE, len(slices)) + b"".join(entries)
    return header + b"\0" * (align - len(header)) + body


def build_natives(out: Path) -> dict[str, Path]:
    """Compile every object the checker tests use into `out`; two compilers run at a time."""
    out.mkdir(parents=True, exist_ok=True)
    macho = ("-shared", "-undefined", "dynamic_lookup")
    elf = ("-shared", "-fPIC")
    jobs = {
        "elf_aarch64": ("aarch64-linux-gnu.2.17", EXTENSION_C, elf),
        "elf_x86_64": ("x86_64-linux-gnu.2.17", EXTENSION_C, elf),
        "elf_aarch64_glibc225": ("aarch64-linux-gnu.2.28", NEW_GLIBC_C, elf),
        "elf_aarch64_obj": ("aarch64-linux-gnu.2.17", EXTENSION_C, ("-c",)),
        "libwfdep": ("aarch64-linux-gnu.2.17", DEP_C, (*elf, "-Wl,-soname,libwfdep.so")),
        "macho_arm64": ("aarch64-macos.11.0", EXTENSION_C, macho),
        "macho_x86_64": ("x86_64-macos.10.13", EXTENSION_C, macho),
        "macho_x86_64_macos13": ("x86_64-macos.13.0", EXTENSION_C, macho),
        "pe_amd64": ("x86_64-windows-gnu", DLL_C, ("-shared", "-nostdlib")),
        "pe_arm64": ("aarch64-windows-gnu", DLL_C, ("-shared", "-nostdlib")),
        "elf_x86_64_v3": ("x86_64-linux-gnu.2.17", ISA_V3_C, elf),
        "elf_x86_64_pyfpe": ("x86_64-linux-gnu.2.17", USES_PYFPE_C, elf),
        "libz_x86_64": ("x86_64-linux-gnu.2.17", FAKE_ZLIB_C, (*elf, "-Wl,-soname,libz.so.1")),
    }
    names = {
        "libwfdep": "libwfdep.so",
        "pe_amd64": "amd64.dll",
        "pe_arm64": "arm64.dll",
        "libz_x86_64": "libz.so.1",
    }

    def compile_one(key: str) -> tuple[str, Path]:
        target, source, args = jobs[key]
        return key, zig_cc(out / names.get(key, f"{key}.bin"), target, source, *args)

    with ThreadPoolExecutor(2) as pool:
        built = dict(pool.map(compile_one, jobs))
    # Needs libwfdep.so first: links against it and finds it beside itself at run time.
    built["elf_aarch64_uses_dep"] = zig_cc(
        out / "uses_dep.bin",
        "aarch64-linux-gnu.2.17",
        USES_DEP_C,
        *elf,
        f"-L{out}",
        "-lwfdep",
        "-Wl,-rpath,$ORIGIN",
    )
    built["libwfmid"] = zig_cc(
        out / "libwfmid.so",
        "aarch64-linux-gnu.2.17",
        MID_C,
        *elf,
        "-Wl,-soname,libwfmid.so",
        f"-L{out}",
        "-lwfdep",
    )
    built["elf_aarch64_uses_mid"] = zig_cc(
        out / "uses_mid.bin",
        "aarch64-linux-gnu.2.17",
        USES_MID_C,
        *elf,
        f"-L{out}",
        "-lwfmid",
        "-Wl,--disable-new-dtags,-rpath,$ORIGIN",
    )
    built["elf_x86_64_uses_zlib_internal"] = zig_cc(
        out / "uses_zlib_internal.bin",
        "x86_64-linux-gnu.2.17",
        USES_ZLIB_INTERNAL_C,
        *elf,
        f"-L{out}",
        "-l:libz.so.1",
    )
    built["ar_aarch64"] = zig_ar(out / "libstatic.a", built["elf_aarch64_obj"])
    fat = out / "macho_universal2.bin"
    fat.write_bytes(
        fat_macho([built["macho_x86_64"].read_bytes(), built["macho_arm64"].read_bytes()])
    )
    built["macho_universal2"] = fat
    return built
