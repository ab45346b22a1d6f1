"""A tiny C library (`libwfdemo`), cross-built from source into a prefix, and a project that links it.

The library stands in for the native dependencies recipes declare (librdkafka, OpenSSL...): it is
compiled with wheelfarm's own cross toolchain into prefix/{include,lib,lib/pkgconfig}, so auditwheel
must find it on the library path and graft it into the wheel, and the test under qemu must load the
grafted copy (the Debian sysroot has no libwfdemo).
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

from support.projects import make_sdist

LIB_SOURCE = textwrap.dedent(
    """
    #include "wfdemo.h"
    /* A checksum that is easy to verify from Python: sum of (i + 1) * byte. */
    long wfdemo_checksum(const char *data, long n) {
        long total = 0;
        for (long i = 0; i < n; i++) total += (i + 1) * (unsigned char)data[i];
        return total;
    }
    const char *wfdemo_version(void) { return "wfdemo 1.0"; }
    """
)
LIB_HEADER = "long wfdemo_checksum(const char *data, long n);\nconst char *wfdemo_version(void);\n"

# The extension's extra function, calling into the library.
PRELUDE = textwrap.dedent(
    """
    #include <wfdemo.h>
    static PyObject *checksum(PyObject *self, PyObject *args) {
        const char *data; Py_ssize_t n;
        if (!PyArg_ParseTuple(args, "y#", &data, &n)) return NULL;
        return PyLong_FromLong(wfdemo_checksum(data, (long)n));
    }
    static PyObject *libversion(PyObject *self, PyObject *noargs) {
        return PyUnicode_FromString(wfdemo_version());
    }
    #define WF_EXTRA_METHODS \\
        {"checksum", checksum, METH_VARARGS, "wfdemo_checksum(data)"}, \\
        {"libversion", libversion, METH_NOARGS, "wfdemo_version()"},
    """
)


def expected_checksum(data: bytes) -> int:
    return sum((i + 1) * b for i, b in enumerate(data))


def build_wfdemo(prefix: Path, target: str = "manylinux_2_17_aarch64") -> Path:
    """Cross-compile libwfdemo.so.1 for `target` into `prefix` with wheelfarm's toolchain."""
    from builder.build.toolchain.host import CrossToolchain

    tc = CrossToolchain(target)
    env = {**os.environ, **tc.env()}
    src = prefix / "src"
    for sub in ("include", "lib/pkgconfig", "src"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (src / "wfdemo.c").write_text(LIB_SOURCE)
    (prefix / "include" / "wfdemo.h").write_text(LIB_HEADER)
    lib = prefix / "lib" / "libwfdemo.so.1"
    subprocess.run(
        [
            env["CC"],
            *env["CFLAGS"].split(),
            "-fPIC",
            "-shared",
            f"-I{prefix / 'include'}",
            "-Wl,-soname,libwfdemo.so.1",
            "-o",
            str(lib),
            str(src / "wfdemo.c"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    link = prefix / "lib" / "libwfdemo.so"
    link.unlink(missing_ok=True)
    link.symlink_to(lib.name)
    (prefix / "lib" / "pkgconfig" / "wfdemo.pc").write_text(
        f"prefix={prefix}\nName: wfdemo\nDescription: demo\nVersion: 1.0\n"
        "Libs: -L${prefix}/lib -lwfdemo\nCflags: -I${prefix}/include\n"
    )
    return prefix


def make_linked_sdist(out: Path, name: str = "wf-linked", version: str = "1.0.0") -> Path:
    """An sdist whose extension links libwfdemo (found through CPPFLAGS/LDFLAGS at build time)."""
    return make_sdist(out, name, version, c_extension=True, prelude_c=PRELUDE, libraries=["wfdemo"])


# libwfdemo as a library project of its own, for builder.deps: a Makefile that installs a dylib
# (macOS) or a shared object (Linux) with PREFIX + DESTDIR, its install name the final prefix.
LIB_MAKEFILE = textwrap.dedent(
    """\
    PREFIX ?= /usr/local
    SHLIB ?= libwfdemo.1.dylib
    SHLIB_FLAGS ?= -Wl,-install_name,$(PREFIX)/lib/$(SHLIB)
    all: $(SHLIB)
    $(SHLIB): wfdemo.c wfdemo.h
    \t$(CC) $(CFLAGS) -fPIC -shared $(SHLIB_FLAGS) -o $@ wfdemo.c
    install: all
    \tmkdir -p $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
    \tcp $(SHLIB) $(DESTDIR)$(PREFIX)/lib/
    \tln -sf $(SHLIB) $(DESTDIR)$(PREFIX)/lib/libwfdemo.dylib
    \tcp wfdemo.h $(DESTDIR)$(PREFIX)/include/
    """
)


def write_wfdemo_library(root: Path, token: str = "") -> Path:
    """libwfdemo's sources and Makefile in `root` (the `make` build system of builder.deps)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wfdemo.c").write_text(LIB_SOURCE + f"/* {token} */\n")
    (root / "wfdemo.h").write_text(LIB_HEADER)
    (root / "Makefile").write_text(LIB_MAKEFILE)
    return root
