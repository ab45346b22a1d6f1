"""Tiny C library sources for builder.build.natives tests: a plain Makefile, CMake, a zlib-style
configure.

Each is written from scratch into a folder; the library `wfsum` has `int wfsum_add(int, int)` and
`wfsum_len` (strlen: a versioned glibc symbol) and
`const char *wfsum_arch(void)` (the architecture it was compiled for), a header and a .pc file.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

SOURCE = textwrap.dedent(
    """
    #include <string.h>
    #include "wfsum.h"
    int wfsum_add(int a, int b) { return a + b; }
    unsigned long wfsum_len(const char *s) { return strlen(s); }
    const char *wfsum_arch(void) {
    #if defined(__aarch64__)
        return "aarch64";
    #else
        return "other";
    #endif
    }
    """
)
HEADER = (
    "int wfsum_add(int a, int b);\nunsigned long wfsum_len(const char *s);\n"
    "const char *wfsum_arch(void);\n"
)
BROKEN = "int wfsum_add(int a, int b) { return a + ; }\n"

# A conventional library Makefile: CC/AR/CFLAGS from the command line, PREFIX + DESTDIR install.
MAKEFILE = textwrap.dedent(
    """\
    PREFIX ?= /usr/local
    CFLAGS ?= -O2
    all: libwfsum.so.1 libwfsum.a
    wfsum.o: wfsum.c wfsum.h
    \t$(CC) $(CFLAGS) -fPIC -c wfsum.c -o wfsum.o
    libwfsum.so.1: wfsum.o
    \t$(CC) -shared -Wl,-soname,libwfsum.so.1 -o $@ wfsum.o
    libwfsum.a: wfsum.o
    \t$(AR) rcs $@ wfsum.o
    install: all
    \tmkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
    \tcp libwfsum.so.1 libwfsum.a $(DESTDIR)$(PREFIX)/lib/
    \tln -sf libwfsum.so.1 $(DESTDIR)$(PREFIX)/lib/libwfsum.so
    \tcp wfsum.h $(DESTDIR)$(PREFIX)/include/
    \tprintf 'prefix=$(PREFIX)\\nName: wfsum\\nDescription: d\\nVersion: 1.0\\nLibs: -L$${prefix}/lib -lwfsum\\nCflags: -I$${prefix}/include\\n' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/wfsum.pc
    """
)

CMAKELISTS = textwrap.dedent(
    """\
    cmake_minimum_required(VERSION 3.13)
    project(wfsum C)
    add_library(wfsum SHARED wfsum.c)
    set_target_properties(wfsum PROPERTIES VERSION 1.0 SOVERSION 1 PUBLIC_HEADER wfsum.h)
    include(GNUInstallDirs)
    install(TARGETS wfsum LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
            PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
    configure_file(wfsum.pc.in wfsum.pc @ONLY)
    install(FILES ${CMAKE_BINARY_DIR}/wfsum.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
    """
)
PC_IN = (
    "prefix=@CMAKE_INSTALL_PREFIX@\nName: wfsum\nDescription: d\nVersion: 1.0\n"
    "Libs: -L${prefix}/lib -lwfsum\nCflags: -I${prefix}/include\n"
)


def write_make_library(root: Path, *, broken: bool = False, token: str = "") -> Path:
    """A Makefile library in `root`; `broken` puts a syntax error in it; `token` makes it unique."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wfsum.c").write_text((BROKEN if broken else SOURCE) + f"/* {token} */\n")
    (root / "wfsum.h").write_text(HEADER)
    (root / "Makefile").write_text(MAKEFILE)
    return root


def write_cmake_library(root: Path, *, token: str = "") -> Path:
    """The same library built by CMake (shared, versioned, with a configured .pc file)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wfsum.c").write_text(SOURCE + f"/* {token} */\n")
    (root / "wfsum.h").write_text(HEADER)
    (root / "CMakeLists.txt").write_text(CMAKELISTS)
    (root / "wfsum.pc.in").write_text(PC_IN)
    return root


# A hand-written configure in zlib's manner: not autotools (no --host; an unknown option is an error),
# the compiler and flags come from the environment, and it writes the Makefile.
ZLIB_STYLE_CONFIGURE = textwrap.dedent(
    """\
    #!/bin/sh
    prefix=/usr/local
    libdir=
    for arg in "$@"; do
      case "$arg" in
        --prefix=*) prefix="${arg#--prefix=}" ;;
        --libdir=*) libdir="${arg#--libdir=}" ;;
        *) echo "configure: unknown option $arg" >&2; exit 1 ;;
      esac
    done
    libdir="${libdir:-$prefix/lib}"
    echo "Checking for shared library support... building with ${CC:-cc} ${CFLAGS}"
    sed -e "s|@CC@|${CC:-cc}|" -e "s|@AR@|${AR:-ar}|" -e "s|@CFLAGS@|${CFLAGS}|" \\
        -e "s|@prefix@|$prefix|" -e "s|@libdir@|$libdir|" Makefile.in > Makefile
    """
)
ZLIB_STYLE_MAKEFILE_IN = (
    MAKEFILE.replace(
        "PREFIX ?= /usr/local", "CC = @CC@\nAR = @AR@\nPREFIX = @prefix@\nLIBDIR = @libdir@"
    )
    .replace("CFLAGS ?= -O2", "CFLAGS = @CFLAGS@")
    .replace("$(DESTDIR)$(PREFIX)/lib", "$(DESTDIR)$(LIBDIR)")
)


def write_zlib_style_library(root: Path, *, token: str = "") -> Path:
    """The same library with a zlib-style hand-written `configure` generating its Makefile."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wfsum.c").write_text(SOURCE + f"/* {token} */\n")
    (root / "wfsum.h").write_text(HEADER)
    (root / "Makefile.in").write_text(ZLIB_STYLE_MAKEFILE_IN)
    configure = root / "configure"
    configure.write_text(ZLIB_STYLE_CONFIGURE)
    configure.chmod(0o755)
    return root


MESON_BUILD = textwrap.dedent(
    """\
    project('wfmes', 'c', version: '1.0.0')
    lib = library('wfmes', 'wfsum.c', install: true, version: '1.0.0')
    install_headers('wfsum.h')
    pkg = import('pkgconfig')
    pkg.generate(lib, name: 'wfmes', description: 'wheelfarm meson test library')
    """
)


def write_meson_library(root: Path, *, token: str = "") -> Path:
    """The library built by meson (shared and static, a generated .pc file)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wfsum.c").write_text(SOURCE + f"/* {token} */\n")
    (root / "wfsum.h").write_text(HEADER)
    (root / "meson.build").write_text(MESON_BUILD)
    return root


# A hand-written configure like many small libraries': it asks the compiler what gcc answers and
# passes the target triple through, then writes a Makefile. Facts it learnt are installed.
CONFIGURE = textwrap.dedent(
    """\
    #!/bin/sh
    prefix=/usr/local; host=
    for a in "$@"; do case "$a" in
      --prefix=*) prefix=${a#--prefix=};; --host=*) host=${a#--host=};;
    esac; done
    : "${CC:=cc}"
    ver=$($CC -dumpversion) || { echo "configure: error: $CC -dumpversion failed" >&2; exit 1; }
    major=${ver%%.*}
    [ "$major" -ge 4 ] || { echo "configure: error: compiler $ver too old" >&2; exit 1; }
    machine=$($CC -dumpmachine) || { echo "configure: error: -dumpmachine failed" >&2; exit 1; }
    libs=$($CC -print-search-dirs | sed -n 's/^libraries: =//p')
    case "$libs" in */usr/lib*) where=host-libraries;; *) where=no-host-libraries;; esac
    echo 'int probe(void) { return 0; }' > conftest.c
    $CC -target "${host%%-*}-unknown-linux-gnu" -c conftest.c -o conftest.o \\
      || { echo "configure: error: the compiler rejects the target triple" >&2; exit 1; }
    # make wants tabs: printf writes them (\\t), the Python source keeps none.
    {
      printf 'all: libwfconf.so\\nlibwfconf.so: wfsum.c\\n'
      printf '\\t$(CC) $(CFLAGS) -fPIC -shared -o libwfconf.so wfsum.c\\n'
      printf 'install: all\\n\\tmkdir -p $(DESTDIR)%s/lib $(DESTDIR)%s/share\\n' "$prefix" "$prefix"
      printf '\\tcp libwfconf.so $(DESTDIR)%s/lib/\\n' "$prefix"
      printf '\\techo "%s %s %s" > $(DESTDIR)%s/share/wfconf-facts.txt\\n' \\
        "$ver" "$machine" "$where" "$prefix"
    } > Makefile
    """
)


def write_configure_library(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wfsum.c").write_text(SOURCE)
    (root / "wfsum.h").write_text(HEADER)
    (root / "configure").write_text(CONFIGURE)
    (root / "configure").chmod(0o755)
    return root
