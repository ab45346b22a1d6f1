"""Debian binary packages in a prefix: siblings chosen by source package, relative symlinks, .pc files
and config tools pointing into the prefix. Fake .debs are built here with dpkg-deb."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from builder.build.natives import debian_binary as db

TRIPLE = "aarch64-linux-gnu"


def _deb(out: Path, name: str, source: str = "", depends: str = "") -> Path:
    root = out / f"{name}-tree"
    (root / "DEBIAN").mkdir(parents=True)
    fields = [f"Package: {name}", "Version: 1.0-1", "Architecture: arm64", "Maintainer: t <t@t>"]
    fields += [f"Source: {source}"] if source else []
    fields += [f"Depends: {depends}"] if depends else []
    (root / "DEBIAN" / "control").write_text("\n".join([*fields, "Description: t", ""]))
    deb = out / f"{name}_1.0-1_arm64.deb"
    subprocess.run(["dpkg-deb", "--build", root, deb], check=True, capture_output=True)
    return deb


def test_siblings_and_dev_dependencies_but_not_the_target_system(tmp_path: Path) -> None:
    closure = [
        _deb(tmp_path, "libpq-dev", "postgresql-15"),
        _deb(tmp_path, "libpq5", "postgresql-15"),
        _deb(tmp_path, "libssl-dev", "openssl"),
        _deb(tmp_path, "libssl3", "openssl"),
        _deb(tmp_path, "openssl", "openssl"),  # a program: not a library to link
        _deb(tmp_path, "libc6", "glibc"),
        _deb(tmp_path, "libc6-dev", "glibc"),
        _deb(tmp_path, "libgssapi-krb5-2", "krb5"),  # a runtime dependency of the runtime library
    ]
    names = [d.name.split("_")[0] for d in db.wanted_debs(closure, ["libpq-dev"])]
    assert names == ["libpq-dev", "libpq5", "libssl-dev", "libssl3"]


def test_absolute_symlinks_become_relative_inside_the_prefix(tmp_path: Path) -> None:
    final = Path("/opt/prefix/wfx-123")
    stage = tmp_path / "stage"
    (stage / "lib").mkdir(parents=True)
    (stage / "lib" / "libwfx.so.1").write_text("elf")
    (stage / "lib" / "libwfx.so").symlink_to(f"/lib/{TRIPLE}/libwfx.so.1")
    (stage / "lib" / "libwfy.so").symlink_to(f"/usr/lib/{TRIPLE}/libwfx.so.1")
    db.relative_symlinks(stage, final, TRIPLE)
    for link in ("libwfx.so", "libwfy.so"):
        assert os.readlink(stage / "lib" / link) == "libwfx.so.1"
        assert (stage / "lib" / link).resolve() == (stage / "lib" / "libwfx.so.1").resolve()


def test_pc_files_point_into_the_prefix(tmp_path: Path) -> None:
    final = Path("/opt/prefix/libpq-abc")
    pc = (
        "prefix=/usr\nlibdir=${prefix}/lib/aarch64-linux-gnu\nincludedir=/usr/include/postgresql\n"
        "Name: libpq\nCflags: -I${includedir}\nLibs: -L/usr/lib/aarch64-linux-gnu -lpq\n"
    )
    text = db.rewrite_pc(pc, final, TRIPLE)
    assert "/usr" not in text
    assert f"includedir={final}/include/postgresql" in text
    assert f"-L{final}/lib -lpq" in text
    assert "prefix=/opt/prefix/libpq-abc\n" in text


def test_config_scripts_are_rewritten_and_programs_get_a_stand_in(tmp_path: Path) -> None:
    final = tmp_path / "final"
    stage = tmp_path / "stage"
    (stage / "bin").mkdir(parents=True)
    (stage / "lib" / "pkgconfig").mkdir(parents=True)
    (stage / "lib" / "pkgconfig" / "wfx.pc").write_text(
        f"prefix={final}\nName: wfx\nDescription: x\nVersion: 1.2.3\n"
        "Cflags: -I${prefix}/include\nLibs: -L${prefix}/lib -lwfx\n"
    )
    (stage / "bin" / "wfx-config").write_text(
        "#!/bin/sh\nprefix=/usr\necho -I/usr/include/wfx -L/usr/lib/aarch64-linux-gnu\n"
    )
    (stage / "bin" / "wfy_config").write_bytes(b"\x7fELF" + b"\0" * 60)  # an aarch64 program
    db.config_tools(stage, final, TRIPLE)
    out = subprocess.run(
        [stage / "bin" / "wfx-config"], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [f"-I{final}/include/wfx", f"-L{final}/lib"]
    # The stand-in answers from the prefix's .pc files (as installed at `final`).
    final.mkdir()
    os.symlink(stage / "lib", final / "lib")
    run = [stage / "bin" / "wfy_config"]
    assert subprocess.run([*run, "--version"], capture_output=True, text=True).stdout == "1.2.3\n"
    libs = subprocess.run([*run, "--libs"], capture_output=True, text=True).stdout.split()
    assert libs == [f"-L{final}/lib", "-lwfx"]
    assert subprocess.run([*run, "--includedir"], capture_output=True, text=True).stdout == (
        f"{final}/include\n"
    )
    bad = subprocess.run([*run, "--frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 1 and "not answered" in bad.stderr


@pytest.mark.slow
def test_libpq_from_debian_with_its_sibling_and_a_pg_config_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from builder.build import natives as deps
    from builder.common.paths import cache_dir

    own = tmp_path / "cache"
    own.mkdir()
    for shared in ("zig", "debian"):
        (cache_dir() / shared).mkdir(parents=True, exist_ok=True)
        (own / shared).symlink_to(cache_dir() / shared)
    monkeypatch.setenv("WHEELFARM_CACHE", str(own))
    spec = deps.NativeSpec("libpq", "debian:libpq-dev", "debian-binary")
    prefix = deps.build_native(spec, None, "manylinux_2_17_aarch64")
    lib = prefix.path / "lib"
    assert (lib / "libpq.so").resolve().name.startswith("libpq.so.5.")  # sibling libpq5 fetched
    assert (lib / "libpq.so").resolve().is_file()
    assert "/usr" not in (lib / "pkgconfig" / "libpq.pc").read_text()
    out = subprocess.run(
        [prefix.path / "bin" / "pg_config", "--includedir"], capture_output=True, text=True
    )
    # Debian's pg_config is a script: rewritten to answer for the prefix, and runnable here.
    assert out.returncode == 0 and out.stdout.strip() == f"{prefix.path}/include/postgresql"
    assert (prefix.path / "include" / "postgresql" / "libpq-fe.h").is_file()
    assert prefix.warnings and "above the target's 2.17" in prefix.warnings[0]


def test_a_config_program_built_for_the_target_gets_a_stand_in(tmp_path: Path) -> None:
    """PostgreSQL built from source installs an aarch64 pg_config: a stand-in answers from the
    prefix's .pc files (PyGreSQL and psycopg2 ask it), and scripts are left alone."""
    from builder.build.natives.debian_binary import config_tools

    final = tmp_path / "prefix"
    (final / "bin").mkdir(parents=True)
    (final / "lib" / "pkgconfig").mkdir(parents=True)
    (final / "lib" / "pkgconfig" / "libpq.pc").write_text(
        f"prefix={final}\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n"
        "Name: libpq\nDescription: x\nVersion: 15.18\nLibs: -L${libdir} -lpq\n"
        "Cflags: -I${includedir}\n"
    )
    (final / "bin" / "pg_config").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    (final / "bin" / "wf-config").write_text("#!/bin/sh\necho /usr/lib\n")
    assert config_tools(final, final, None) == ["pg_config"]
    ask = lambda *a: subprocess.run(  # noqa: E731
        [final / "bin" / "pg_config", *a], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert ask("--includedir") == f"{final}/include" and ask("--libdir") == f"{final}/lib"
    assert ask("--version") == "PostgreSQL 15.18" and ask("--libs") == f"-L{final}/lib -lpq"
    assert (final / "bin" / "wf-config").read_text().endswith("echo /usr/lib\n")  # untouched
