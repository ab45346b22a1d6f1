"""Mach-O fixtures for the macOS checks: zig links real arm64 extensions and dylibs for macOS 11."""

from __future__ import annotations

import textwrap
from pathlib import Path

from support.native import zig_cc

TARGET = "aarch64-macos.11.0"
EXTENSION = ("-shared", "-undefined", "dynamic_lookup")

# A real CPython extension: its Py* symbols stay undefined (flat lookup) until Python loads it.
EXTENSION_C = textwrap.dedent(
    """
    #include <string.h>
    typedef struct _object PyObject;
    extern PyObject *PyLong_FromLong(long);
    extern PyObject *PyModule_Create2(void *, int);
    PyObject *wf_len(const char *s) { return PyLong_FromLong((long)strlen(s)); }
    PyObject *PyInit__native(void) { return PyModule_Create2(0, 1013); }
    """
)
# The same with a symbol no CPython exports.
MISSING_SYMBOL_C = (
    EXTENSION_C + "extern int PyFoo_Bar(int);\nint wf_foo(void) { return PyFoo_Bar(1); }\n"
)
LIB_C = "int wf_dep(int x) { return 2 * x; }\n"
USES_LIB_C = EXTENSION_C + "int wf_dep(int x);\nint wf_twice(int x) { return wf_dep(x); }\n"


def build_macos_natives(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    built = {
        "ext": zig_cc(out / "ext.so", TARGET, EXTENSION_C, *EXTENSION),
        "ext_missing": zig_cc(out / "ext_missing.so", TARGET, MISSING_SYMBOL_C, *EXTENSION),
        "ext_macos13": zig_cc(out / "ext13.so", "aarch64-macos.13.0", EXTENSION_C, *EXTENSION),
        "ext_x86_64": zig_cc(out / "ext_x86.so", "x86_64-macos.11.0", EXTENSION_C, *EXTENSION),
    }
    # A dylib whose install name is its build folder, as a library installed into a prefix has.
    lib = out / "build" / "lib" / "libwfdep.dylib"
    lib.parent.mkdir(parents=True)
    built["lib"] = zig_cc(lib, TARGET, LIB_C, "-shared", f"-Wl,-install_name,{lib}")
    built["ext_uses_lib"] = zig_cc(
        out / "ext_uses_lib.so", TARGET, USES_LIB_C, *EXTENSION, f"-L{lib.parent}", "-lwfdep"
    )
    # The same linked as delocate leaves it: the library beside it in .dylibs.
    rel = out / "rel" / "libwfdep.dylib"
    rel.parent.mkdir()
    built["lib_rel"] = zig_cc(
        rel, TARGET, LIB_C, "-shared", "-Wl,-install_name,@loader_path/.dylibs/libwfdep.dylib"
    )
    built["ext_uses_lib_rel"] = zig_cc(
        out / "ext_uses_lib_rel.so", TARGET, USES_LIB_C, *EXTENSION, f"-L{rel.parent}", "-lwfdep"
    )
    return built
