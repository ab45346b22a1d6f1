"""Native dependencies found automatically: a log's missing header/module/library/config tool, looked
up in a local Debian archive's Contents index through the private apt, turned into [[native]] entries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support.fake_archive import write_archive

from builder.build.natives import resolve as rs
from builder.build.natives import scripts
from builder.build.toolchain.debian import PrivateApt

LOGS = Path(__file__).parent.parent / "data" / "logs"
TRIPLE = "aarch64-linux-gnu"


@pytest.fixture
def archive(tmp_path: Path) -> PrivateApt:
    mirror = write_archive(
        tmp_path / "archive",
        {
            "libxml2-dev": (
                "libxml2",
                ["usr/include/libxml2/libxml/parser.h", "usr/bin/xml2-config"],
            ),
            "libwfz-dev": (
                "wfz",
                [f"usr/lib/{TRIPLE}/pkgconfig/wfz.pc", f"usr/lib/{TRIPLE}/libwfz.so"],
            ),
            "libcurl4-gnutls-dev": ("curl", ["usr/bin/curl-config"]),
            "libcurl4-openssl-dev": ("curl", ["usr/bin/curl-config"]),
            "wf-vendored": ("wfv", ["usr/share/doc/wf/include/libxml/parser.h"]),
        },
    )
    return PrivateApt(
        "bookworm", "arm64", root=tmp_path / "apt", mirror=mirror, contents=True, trusted=True
    )


def test_the_missing_things_of_real_logs() -> None:
    text = (LOGS / "setuptools-missing-system-header.log").read_text()
    assert rs.missing_from_log(text) == [rs.Missing("header", "libxml/parser.h")]
    meson = (LOGS / "meson-dependency-not-found.log").read_text()
    assert rs.missing_from_log(meson) == [rs.Missing("pkg-config", "wfnotthere")]
    # A CPython header removed in 3.11 is no library to look for.
    assert rs.missing_from_log((LOGS / "setuptools-longintrepr.log").read_text()) == []
    shadow = "wheelfarm: xml2-config is not available for the target (...)\nld.lld: error: unable to find library -lwfz\n"
    acl = "checking for attr/error_context.h... no\n\nFATAL ERROR: attr/error_context.h does not exist.\n"
    assert rs.missing_from_log(acl) == [rs.Missing("header", "attr/error_context.h")]
    optional = "checking for valgrind/valgrind.h... no\nconfigure: error: C compiler cannot create executables\n"
    assert rs.missing_from_log(optional) == []
    augeas = "configure: error: Could not find a working readline library (see config.log for details).\n"
    assert rs.missing_from_log(augeas) == [rs.Missing("library", "readline")]
    sqlcipher = 'configure: error: Library crypto not found. Install openssl!"\n'
    assert rs.missing_from_log(sqlcipher) == [rs.Missing("library", "crypto")]
    parted = "configure: error: GNU Parted requires libuuid - a part of the util-linux-ng package\n"
    assert rs.missing_from_log(parted) == [rs.Missing("library", "uuid")]
    # dbus' configure (PKG_CHECK_MODULES) lacking expat, as a found library's own build said it
    dbus = (LOGS / "autoconf-pkg-check-modules.log").read_text()
    assert rs.missing_from_log(dbus) == [rs.Missing("pkg-config", "expat")]
    pycurl = "FileNotFoundError: [Errno 2] No such file or directory: 'curl-config'\n"
    assert rs.missing_from_log(pycurl) == [rs.Missing("config-tool", "curl-config")]
    assert rs.missing_from_log(shadow) == [
        rs.Missing("config-tool", "xml2-config"),
        rs.Missing("library", "wfz"),
    ]


def test_contents_lookup_in_a_local_archive_gives_native_entries(archive: PrivateApt) -> None:
    missing = [
        rs.Missing("header", "libxml/parser.h"),
        rs.Missing("config-tool", "xml2-config"),  # same source package: one entry
        rs.Missing("pkg-config", "wfz"),
        rs.Missing("config-tool", "curl-config"),  # two providers: the policy in knowledge.toml
        rs.Missing("header", "nowhere.h"),
    ]
    found, unresolved = rs.resolve(missing, archive, target_glibc=(2, 17))
    assert [(r.binary, r.source) for r in found] == [
        ("libxml2-dev", "libxml2"),
        ("libwfz-dev", "wfz"),
        ("libcurl4-openssl-dev", "curl"),
    ]
    assert found[0].path == "usr/include/libxml2/libxml/parser.h"  # not the vendored copy
    assert found[0].entry == {
        "name": "libxml2",
        "source": "debian:libxml2",
        "build-system": "autotools",
        "args": ["--without-python", "--without-lzma", "--without-icu", "--disable-static"],
    }
    assert found[1].entry["build-system"] == "auto" and "args" not in found[1].entry
    assert unresolved == [rs.Missing("header", "nowhere.h")]
    # A target whose glibc floor allows bookworm's binaries gets them instead of a source build.
    found, _ = rs.resolve(missing[:1], archive, target_glibc=(2, 36))
    assert found[0].entry == {
        "name": "libxml2",
        "source": "debian:libxml2-dev",
        "build-system": "debian-binary",
    }


def test_entries_are_valid_recipe_natives() -> None:
    from builder.build.natives import spec_of

    for source in rs.knowledge()["source"]:
        entry = rs.entry_for(source, f"lib{source}-dev", (2, 17), "bookworm")
        assert spec_of(entry).build_system == entry["build-system"]


# --------------------------------------------------------------------------------------------
# What an sdist's own build scripts and sources name (builder.build.natives.scripts)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text).lstrip())
    return root


SETUP_PY = """
    import os, subprocess, sys
    from setuptools import Extension, setup

    if not os.path.exists('/usr/include/sys/capability.h'):
        sys.exit("You need to install libcap development headers to build this module")
    flags = subprocess.check_output(['pkg-config', '--cflags', 'wfa >= 1.0']).split()
    xml = subprocess.getoutput('xml2-config --cflags')
    pg = os.environ.get('PG_CONFIG', 'pg_config')
    found = [n for n in flags]  # names only a run would know
    if sys.platform == 'win32':
        libs = ['ws2_32', 'wfwindows']
    setup(ext_modules=[Extension(
        'x', ['src/x.c'], depends=['src/own.h'], libraries=['cap', 'm', 'pthread', 'python3.11'],
        include_dirs=['/usr/include/libxml2', 'src', '/usr/include/python3.11'],
    )])
"""


def test_the_build_scripts_name_libraries_headers_modules_and_tools(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "setup.py": SETUP_PY,
            "setup.cfg": "[build_ext]\nlibraries = wfcfg1\n    wfcfg2\n",
            "src/own.h": "int own;\n",
            "meson.build": """
                dep = dependency('wfm', version: '>=1')
                opt = dependency('wfoptional', required: false)
                thr = dependency('threads')
                pyd = import('python').find_installation().dependency()
                lib = cc.find_library('wfml')
                cc.has_header('wfasked.h')
                cc.has_header('wfneeded.h', required: true)
            """,
            "CMakeLists.txt": """
                find_package(ZLIB REQUIRED)
                find_package(WfUnknownModule REQUIRED)
                find_package(PNG)
                pkg_check_modules(WFC REQUIRED IMPORTED_TARGET wfc>=1.2)
                pkg_check_modules(WFO wfoptional2)
                find_library(WFL_LIB NAMES wfl libwfl2 HINTS /opt)
                find_path(WFH_INC NAMES wfh/wfh.h PATHS /opt)
            """,
        },
    )
    found = scripts.missing_from_scripts(src)
    assert [(m.kind, m.name) for m in found] == [
        ("header", "sys/capability.h"),
        ("pkg-config", "wfa"),
        ("config-tool", "xml2-config"),
        ("config-tool", "pg_config"),
        ("library", "cap"),
        ("include-dir", "libxml2"),
        ("library", "wfcfg1"),
        ("library", "wfcfg2"),
        ("pkg-config", "wfm"),
        ("library", "wfml"),
        ("header", "wfneeded.h"),
        ("pkg-config", "zlib"),  # find_package(ZLIB): [cmake-packages]
        ("pkg-config", "wfc"),
        ("library", "wfl"),
        ("library", "wfl2"),
        ("header", "wfh/wfh.h"),
    ]
    # each says which file named it, and where
    assert [m.origin for m in found[:5]] == [
        "setup.py:4",
        "setup.py:6",
        "setup.py:7",
        "setup.py:8",
        "setup.py:13",
    ]
    assert found[-1].origin == "CMakeLists.txt:7"


C_SOURCE = """
    #include <Python.h>
    #include <structmember.h>
    #include <stdio.h>
    #include <sys/xattr.h>
    #include <linux/input.h>
    #include <arm_neon.h>
    #include <vector>
    #include <numpy/arrayobject.h>
    #include "own.h"
    #include <own.h>
    #include <lib/vendored.h>
    #include <attr/libattr.h>
    #ifdef _WIN32
    #include <windows.h>
    #else
    #include <wfposix.h>
    #endif
    #ifdef HAVE_WFOPT
    #include <wfopt.h>
    #endif
    #if defined(__APPLE__)
    #include <CoreFoundation/CoreFoundation.h>
    #elif defined(__linux__)
    #include <wflinux.h>
    #else
    #include <wfother.h>
    #endif
    #if PLATFORM == PLATFORM_LINUX
    #include <wfplatform.h>
    #elif PLATFORM == PLATFORM_BSD
    #include <sys/extattr.h>
    #endif
    #if 0
    #include <wfdead.h>
    #endif
"""


def test_source_includes_the_target_lacks_outside_other_platforms_code(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "src/x.c": C_SOURCE,
            "src/own.h": "int own;\n",
            "third_party/zz/lib/vendored.h": "int v;\n",
            "src/x_win.c": "#include <wfwinonly.h>\n",
            "tests/t.c": "#include <wftestonly.h>\n",
            "src/y.pyx": 'cdef extern from "wfcy.h":\n    pass\ncdef extern from "own.h":\n    pass\n',
            "src/gen.c": "/* Generated by Cython 0.29.36 */\n#include <wfgenerated.h>\n",
        },
    )
    found = scripts.missing_from_scripts(src)
    assert [(m.name, m.origin) for m in found] == [
        ("attr/libattr.h", "src/x.c:12"),
        ("wfposix.h", "src/x.c:16"),
        ("wflinux.h", "src/x.c:24"),
        ("wfplatform.h", "src/x.c:29"),
        ("wfcy.h", "src/y.pyx:1"),
    ]


def test_headers_glibc_and_zig_provide_for_the_target_need_no_library(tmp_path: Path) -> None:
    from builder.build.toolchain.host import target_include_dirs

    dirs = target_include_dirs("manylinux_2_17_aarch64")
    assert any((d / "sys" / "xattr.h").is_file() for d in dirs)
    assert not any((d / "sys" / "capability.h").is_file() for d in dirs)
    src = _write(
        tmp_path,
        {"setup.py": "HEADERS = ['sys/xattr.h', 'linux/input.h', 'sys/capability.h']\n"},
    )
    assert scripts.missing_from_scripts(src) == [rs.Missing("header", "sys/capability.h")]


def test_what_the_scripts_name_resolves_through_the_contents_index(
    tmp_path: Path, archive: PrivateApt
) -> None:
    src = _write(
        tmp_path / "src",
        {
            "setup.py": """
                from setuptools import Extension, setup
                setup(ext_modules=[Extension('x', ['x.c'], include_dirs=['/usr/include/libxml2'],
                      libraries=['wfz', 'wfnowhere'])])
            """
        },
    )
    missing = scripts.missing_from_scripts(src)
    found, unresolved = rs.resolve(missing, archive, target_glibc=(2, 17))
    assert [(r.missing.name, r.binary) for r in found] == [
        ("libxml2", "libxml2-dev"),
        ("wfz", "libwfz-dev"),
    ]
    assert unresolved == [rs.Missing("library", "wfnowhere")]
    assert unresolved[0].origin == "setup.py:3"
