"""Native dependencies found automatically: a log's missing header/module/library/config tool, looked
up in a local Debian archive's Contents index through the private apt, turned into [[native]] entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fake_archive import write_archive

from builder.build.natives import resolve as rs
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
    assert found[1].entry["build-system"] == "autotools" and "args" not in found[1].entry
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
