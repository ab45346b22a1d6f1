"""builder.build.natives: native libraries cross-built into per-target prefixes, reused, failing clearly.

The libraries are written by the tests (tests/support/libsrc.py). Prefixes go to a cache folder of
the test's own; zig's cache is the real one (linked in), so only the first run pays for glibc stubs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from support.libsrc import (
    write_cmake_library,
    write_configure_library,
    write_make_library,
    write_meson_library,
    write_zlib_style_library,
)

import builder.recipes.recipe as recipe_module
from builder.build import natives as deps
from builder.check.elfdyn import ElfFacts, read_elf
from builder.common.buildlog import first_error_line
from builder.common.paths import cache_dir

EM_AARCH64 = 183


def _elf(path: Path) -> ElfFacts:
    with open(path, "rb") as fh:
        return read_elf(fh)


def _machine(path: Path) -> int:
    return _elf(path).machine


TARGET = "manylinux_2_17_aarch64"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    own = tmp_path / "cache"
    own.mkdir()
    # Big downloads and zig's cache are shared with the real cache; prefixes are the test's own.
    for shared in ("zig", "debian"):
        (cache_dir() / shared).mkdir(parents=True, exist_ok=True)
        (own / shared).symlink_to(cache_dir() / shared)
    monkeypatch.setenv("WHEELFARM_CACHE", str(own))
    return own


def lib(name: str, source: Path, build_system: str, args: tuple[str, ...] = ()) -> deps.NativeSpec:
    return deps.NativeSpec(name=name, source=str(source), build_system=build_system, args=args)


def test_make_library_is_cross_built_once_and_reused(cache: Path, tmp_path: Path) -> None:
    src = write_make_library(tmp_path / "wfsum", token=uuid.uuid4().hex)
    messages: list[str] = []
    first = deps.build_native(lib("wfsum", src, "make"), None, TARGET, say=messages.append)

    assert first.built
    assert first.path.parent == cache / "prefix" / TARGET
    assert first.path.name.startswith("wfsum-")
    so = first.path / "lib" / "libwfsum.so.1"
    assert _machine(so) == EM_AARCH64
    assert _machine(first.path / "lib" / "libwfsum.so.1") == EM_AARCH64
    assert (first.path / "include" / "wfsum.h").is_file()
    assert first.glibc == (2, 17)  # strlen@GLIBC_2.17: zig links the target's floor
    # Installed with DESTDIR for the final prefix: the .pc file names it, not a staging folder.
    assert f"prefix={first.path}\n" in (first.path / "lib/pkgconfig/wfsum.pc").read_text()
    log_text = first.log.read_text()
    assert "make install" in log_text and "DESTDIR=" in log_text

    log_mtime = first.log.stat().st_mtime_ns
    marker = (first.path / deps.MARKER).read_text()
    again = deps.build_native(lib("wfsum", src, "make"), None, TARGET, say=messages.append)
    assert not again.built
    assert again.path == first.path
    assert first.log.stat().st_mtime_ns == log_mtime  # nothing ran, nothing was logged
    assert (first.path / deps.MARKER).read_text() == marker
    assert any("reusing" in m for m in messages)
    # No temporary build or staging folders are left behind.
    assert sorted(p.name for p in first.path.parent.iterdir() if p.name.startswith(".wfsum")) == [
        f".{first.path.name}.lock"
    ]

    # A different recipe entry (args) is a different prefix.
    other = deps.build_native(lib("wfsum", src, "make", ("V=1",)), None, TARGET)
    assert other.built and other.path != first.path


def test_hand_written_configure_library_takes_the_compiler_from_the_environment(
    cache: Path, tmp_path: Path
) -> None:
    src = write_zlib_style_library(tmp_path / "wfsum-configure", token=uuid.uuid4().hex)
    prefix = deps.build_native(lib("wfsum", src, "configure"), None, TARGET)
    so = prefix.path / "lib" / "libwfsum.so.1"
    assert _machine(so) == EM_AARCH64 and prefix.glibc == (2, 17)
    assert (prefix.path / "include" / "wfsum.h").is_file()
    log = prefix.log.read_text()
    assert "--host" not in log  # the configure would refuse it, as zlib's does
    compiler = log.split("building with ", 1)[1].splitlines()[0]  # CC from the environment
    assert re.search(r"aarch64-linux-gnu\.2\.17/bin[^/ ]*/cc -O2", compiler), compiler


def test_a_library_is_rebuilt_when_an_earlier_one_changes(cache: Path, tmp_path: Path) -> None:
    first_src = write_make_library(tmp_path / "first", token=uuid.uuid4().hex)
    second_src = write_cmake_library(tmp_path / "second", token=uuid.uuid4().hex)

    def chain(*args: str) -> list[deps.NativePrefix]:
        specs = [lib("first", first_src, "make", args), lib("second", second_src, "cmake")]
        return list(deps.prepare_natives(specs, None, TARGET).prefixes)

    a = chain()
    b = chain("V=1")  # the first library's entry changed: the second was built against the old one
    assert b[0].path != a[0].path and b[1].path != a[1].path
    assert b[1].built and a[0].path.name in a[1].log.read_text()
    again = chain("V=1")
    assert [p.path for p in again] == [p.path for p in b] and not any(p.built for p in again)


def test_cmake_library_and_the_build_environment(cache: Path, tmp_path: Path) -> None:
    src = write_cmake_library(tmp_path / "wfsum-cmake", token=uuid.uuid4().hex)
    result = deps.prepare_natives([lib("wfsum", src, "cmake")], None, TARGET)
    (prefix,) = result.prefixes
    so = prefix.path / "lib" / "libwfsum.so.1.0"
    assert so.is_file() and _machine(so) == EM_AARCH64
    assert f"prefix={prefix.path}\n" in (prefix.path / "lib/pkgconfig/wfsum.pc").read_text()
    assert "CMAKE_TOOLCHAIN_FILE=" in prefix.log.read_text()

    env = result.env
    assert f"-I{prefix.path / 'include'}" in env["CPPFLAGS"].split()
    assert f"-L{prefix.path / 'lib'}" in env["LDFLAGS"].split()
    assert env["PKG_CONFIG_PATH"] == str(prefix.path / "lib" / "pkgconfig")
    assert env["LD_LIBRARY_PATH"] == str(prefix.path / "lib")
    assert env["CMAKE_PREFIX_PATH"] == str(prefix.path)
    assert env["WFSUM_ROOT_DIR"] == str(prefix.path)
    toolchain = Path(env["CMAKE_TOOLCHAIN_FILE"]).read_text()
    assert "set(CMAKE_SYSTEM_PROCESSOR aarch64)" in toolchain
    assert f'set(CMAKE_FIND_ROOT_PATH "{prefix.path}")' in toolchain
    assert result.library_path == [prefix.path / "lib"]

    # What builder.build.pipeline calls: the same prefix again (reused) and the same extra variables.
    class Recipe:
        path = tmp_path / "recipe.toml"
        native = (lib("wfsum", src, "cmake"),)

    assert deps.prefixes_for(Recipe, TARGET) == [prefix.path]
    extra = deps.prefix_extra_env([prefix.path], TARGET)
    assert extra["WFSUM_ROOT_DIR"] == str(prefix.path)
    assert Path(extra["CMAKE_TOOLCHAIN_FILE"]).is_file()


def test_a_failing_build_reports_the_first_error_line(cache: Path, tmp_path: Path) -> None:
    src = write_make_library(tmp_path / "broken", broken=True, token=uuid.uuid4().hex)
    with pytest.raises(deps.NativeBuildError) as info:
        deps.build_native(lib("wfsum", src, "make"), None, TARGET)
    err = info.value
    assert "wfsum.c:1" in err.first_error and "error:" in err.first_error
    assert err.first_error in str(err) and str(err.log) in str(err)
    assert err.log is not None and err.log.is_file()  # the full log is kept
    assert "make -j" in err.log.read_text()
    root = cache / "prefix" / TARGET
    assert not [p for p in root.iterdir() if p.is_dir()]  # no prefix, no leftover build folder

    # Through the pipeline's entry point it is a BuildError of step "deps".
    from builder.common.buildlog import BuildError

    class Recipe:
        path = tmp_path / "recipe.toml"
        native = (lib("wfsum", src, "make"),)

    with pytest.raises(BuildError) as info2:
        deps.prefixes_for(Recipe, TARGET)
    assert info2.value.step == "deps" and "error:" in info2.value.summary


def test_recipe_entries_are_checked(tmp_path: Path) -> None:
    with pytest.raises(
        deps.NativeBuildError, match="'scons' is not one of autotools, configure, cmake"
    ):
        deps.spec_of({"name": "x", "source": "debian:x", "build-system": "scons"})
    assert (
        deps.spec_of({"name": "x", "source": "y", "build-system": "meson"}).build_system == "meson"
    )
    with pytest.raises(deps.NativeBuildError, match="sha256"):
        deps.fetch_source(
            deps.NativeSpec("x", "https://example.invalid/x.tar.gz", "make"), tmp_path, print
        )
    spec = deps.spec_of(
        {"name": "librdkafka", "source": "debian:librdkafka", "build-system": "cmake"}
    )
    assert spec.build_system == "cmake" and spec.args == ()
    assert deps.target_glibc("manylinux_2_28_aarch64") == (2, 28)
    assert deps.target_glibc("manylinux2014_aarch64") == (2, 17)


def test_glibc_symbol_versions_are_read_from_real_binaries() -> None:
    # The host's own ls is linked against Debian 12's glibc 2.36: it needs more than 2.17.
    ls = Path("/bin/ls").resolve()
    assert deps.glibc_floor([ls]) is not None and deps.glibc_floor([ls]) > (2, 17)
    above = _elf(ls).symbols_above((2, 17))
    assert above and all("@GLIBC_2." in s for s in above)
    assert _elf(ls).symbols_above((9, 99)) == []


def test_first_error_line() -> None:
    log = "\n".join(
        [
            "cc -Werror-implicit -c a.c",
            "a.c:3:5: error: expected expression",
            "make: *** [Makefile:4: a.o] Error 1",
        ]
    )
    assert first_error_line(log) == "a.c:3:5: error: expected expression"
    assert first_error_line("CMake Error at CMakeLists.txt:2 (x):").startswith("CMake Error")
    assert first_error_line("all good\n") is None


@pytest.mark.slow
def test_debian_binary_packages_warn_about_their_glibc(cache: Path, tmp_path: Path) -> None:
    """Debian 12's arm64 libssl3 is linked against glibc 2.36: above manylinux_2_17's floor."""
    spec = deps.NativeSpec("openssl", "debian:libssl-dev", "debian-binary", args=("libssl3",))
    prefix = deps.build_native(spec, None, TARGET)
    assert (prefix.path / "include" / "openssl" / "ssl.h").is_file()
    assert (prefix.path / "include" / "openssl" / "opensslconf.h").is_file()  # multiarch header
    so = prefix.path / "lib" / "libssl.so.3"
    assert _machine(so) == EM_AARCH64
    assert prefix.glibc is not None and prefix.glibc > (2, 17)
    assert prefix.warnings and "above the target's 2.17" in prefix.warnings[0]
    assert "@GLIBC_2." in prefix.warnings[0]
    assert not (prefix.path / "lib" / "libc.so.6").exists()  # only the named packages
    info = json.loads((prefix.path / deps.MARKER).read_text())
    assert info["warnings"] == list(prefix.warnings)


@pytest.mark.slow
def test_autotools_library_from_a_debian_source_package(cache: Path) -> None:
    """libyaml from `apt-get source libyaml` (bookworm), configured with --host and cross-built."""
    spec = deps.NativeSpec("libyaml", "debian:libyaml", "autotools", args=("--disable-static",))
    prefix = deps.build_native(spec, None, TARGET)
    so = prefix.path / "lib" / "libyaml-0.so.2"
    assert _machine(so.resolve()) == EM_AARCH64
    assert (prefix.path / "include" / "yaml.h").is_file()
    assert prefix.glibc is not None and prefix.glibc <= (2, 17)
    assert "--host=aarch64-linux-gnu" in prefix.log.read_text()
    pc = (prefix.path / "lib" / "pkgconfig" / "yaml-0.1.pc").read_text()
    assert f"prefix={prefix.path}\n" in pc


def test_schema_build_systems_are_the_registry() -> None:
    # The recipe schema accepts exactly what the builder can build: one module per build system.
    schema = json.loads(Path(recipe_module.__file__).with_name("recipe.schema.json").read_text())
    native = schema["properties"]["native"]["items"]["properties"]
    assert sorted(native["build-system"]["enum"]) == sorted(deps.BUILD_SYSTEMS)
    for name, system in deps.BUILD_SYSTEMS.items():
        assert system.name == name and callable(system.build)
        module = name.replace("-", "_")
        assert (Path(deps.__file__).parent / f"{module}.py").exists(), name


def test_meson_library_is_cross_built_with_a_cross_file(cache: Path, tmp_path: Path) -> None:
    src = write_meson_library(tmp_path / "wfmes")
    built = deps.build_native(lib("wfmes", src, "meson"), None, TARGET)
    so = built.path / "lib" / "libwfmes.so"
    assert so.exists() and _machine(so.resolve()) == EM_AARCH64
    assert (built.path / "lib" / "pkgconfig" / "wfmes.pc").exists()
    text = built.log.read_text()
    assert "--cross-file=" in text and "needs_exe_wrapper" not in text  # the file, not inline
    assert "host leak" not in text


def test_configure_that_asks_the_compiler_like_gcc(cache: Path, tmp_path: Path) -> None:
    # A hand-written configure asks `$CC -dumpversion`, `-dumpmachine`, `-print-search-dirs` and
    # passes the GNU triple through as --target: zig alone fails all four.
    src = write_configure_library(tmp_path / "wfconf")
    built = deps.build_native(lib("wfconf", src, "autotools"), None, TARGET)
    so = built.path / "lib" / "libwfconf.so"
    assert _machine(so) == EM_AARCH64
    facts = (built.path / "share" / "wfconf-facts.txt").read_text().split()
    assert facts[0].split(".")[0].isdigit() and facts[1] == "aarch64-linux-gnu"
    assert facts[2] == "no-host-libraries", facts


def test_a_library_build_that_names_a_host_folder_fails_naming_the_command(
    cache: Path, tmp_path: Path
) -> None:
    src = write_make_library(tmp_path / "wfleak", token=uuid.uuid4().hex)
    spec = lib("wfleak", src, "make", ("CFLAGS=-O2 -I/usr/include/libxml2",))
    with pytest.raises(deps.NativeBuildError) as info:
        deps.build_native(spec, None, TARGET)
    assert "host leak: -I/usr/include/libxml2" in info.value.first_error
    assert "wfsum.c" in info.value.first_error  # the command that did it
    assert not list((cache / "prefix" / TARGET).glob("wfleak-*/.wheelfarm-native.json"))


def test_a_configure_older_than_its_patched_inputs_is_kept(tmp_path: Path) -> None:
    """Debian's quilt patches touch configure.ac or Makefile.am after the release's configure was
    made: make would rerun aclocal itself (exit 127 without it; cups' autoheader fails)."""
    from builder.build.natives.autotools import mark_generated_current, needs_autoreconf

    assert needs_autoreconf(tmp_path)  # no configure at all
    for name in ("configure.ac", "lib/Makefile.am", "configure"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    os.utime(tmp_path / "configure.ac", (1000, 1000))
    os.utime(tmp_path / "lib/Makefile.am", (1000, 1000))
    os.utime(tmp_path / "configure", (2000, 2000))
    assert not needs_autoreconf(tmp_path)
    os.utime(tmp_path / "lib/Makefile.am", (3000, 3000))  # patched after the release
    assert needs_autoreconf(tmp_path)
    # the shipped configure is kept (marked current), so make does not rerun aclocal/autoheader
    (tmp_path / "lib/Makefile.in").write_text("")
    os.utime(tmp_path / "lib/Makefile.in", (1500, 1500))
    assert set(mark_generated_current(tmp_path)) == {
        tmp_path / "configure",
        tmp_path / "lib/Makefile.in",
    }
    assert not needs_autoreconf(tmp_path)
    assert (tmp_path / "lib/Makefile.in").stat().st_mtime > 3000


def test_configure_is_found_in_the_source_subfolder_when_not_at_the_top(tmp_path: Path) -> None:
    from builder.build.natives.autotools import configure_dir

    (tmp_path / "doc").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "configure.ac").write_text("")  # krb5's layout
    assert configure_dir(tmp_path) == tmp_path / "src"
    (tmp_path / "configure").write_text("")
    assert configure_dir(tmp_path) == tmp_path


def test_a_configure_check_written_for_gcc_13_passes(tmp_path: Path) -> None:
    """OpenLDAP checks `pthread_detach(&thread)` (a pointer for an integer): gcc <= 13 warned,
    clang 16+ refuses, and configure stopped with "could not locate pthread_detach()"."""
    from builder.build.natives import _build_env
    from builder.build.toolchain.host import CrossToolchain

    env = _build_env(CrossToolchain(TARGET), {})
    (tmp_path / "t.c").write_text(
        "#include <pthread.h>\nint main(void) { pthread_t t; return pthread_detach(&t); }\n"
    )
    cmd = [env["CC"], *env["CFLAGS"].split(), "-c", "t.c", "-o", "t.o"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "int-conversion" in proc.stderr  # still said, as a warning


@pytest.mark.parametrize(
    ("files", "system"),
    [
        (["configure", "CMakeLists.txt"], "autotools"),  # curl: configure, as Debian builds it
        (["configure.ac"], "autotools"),
        (["CMakeLists.txt", "Makefile"], "cmake"),
        (["meson.build"], "meson"),
        (["Configure", "config"], "openssl"),
        (["Makefile"], "make"),  # libcap2
        (["src/configure.ac"], "autotools"),  # krb5
    ],
)
def test_auto_finds_the_source_trees_build_system(
    tmp_path: Path, files: list[str], system: str
) -> None:
    from builder.build.natives.auto import detect

    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert detect(tmp_path).name == system


def test_auto_names_the_tree_when_it_finds_no_build_system(tmp_path: Path) -> None:
    from builder.build.natives.auto import detect

    with pytest.raises(deps.NativeBuildError, match="no build system found"):
        detect(tmp_path)


def test_a_config_sub_too_old_for_the_target_is_replaced_by_the_hosts(tmp_path: Path) -> None:
    """db5.3 ships a config.sub from before aarch64 existed: configure stopped at once."""
    from types import SimpleNamespace

    from builder.build.natives.autotools import refresh_config_scripts

    (tmp_path / "dist").mkdir()
    old = "#!/bin/sh\ncase $1 in x86_64-*) echo $1;; *) echo unknown >&2; exit 1;; esac\n"
    (tmp_path / "dist" / "config.sub").write_text(old)
    (tmp_path / "dist" / "config.guess").write_text("#!/bin/sh\necho x86_64-pc-linux-gnu\n")
    ctx = SimpleNamespace(run=SimpleNamespace(say=lambda _m: None), spec=SimpleNamespace(name="x"))
    assert refresh_config_scripts(tmp_path, "aarch64-linux-gnu", ctx) == [
        tmp_path / "dist" / "config.sub"
    ]
    out = subprocess.run(
        ["sh", "config.sub", "aarch64-linux-gnu"],
        cwd=tmp_path / "dist",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.strip() == "aarch64-unknown-linux-gnu"
    assert refresh_config_scripts(tmp_path, "aarch64-linux-gnu", ctx) == []  # current now


def test_configure_gets_glibcs_answers_for_what_it_cannot_run_when_cross_compiling(
    cache: Path, tmp_path: Path
) -> None:
    """autoconf cannot run AC_FUNC_MEMCMP's or AC_FUNC_MALLOC's test program when it
    cross-compiles and assumes the worst: it replaces memcmp and malloc with its own (OpenLDAP's
    libldap then called lutil_memcmp, which nothing exports). The glibc answers (config.site) keep
    the C library's; an answer given as a configure argument still wins."""
    src = tmp_path / "wfsite"
    src.mkdir()
    (src / "configure.ac").write_text(
        "AC_INIT([wfsite], [1.0])\nAC_PROG_CC\nAC_FUNC_MEMCMP\nAC_FUNC_MALLOC\n"
        "AC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n"
    )
    (src / "Makefile.in").write_text(
        "prefix = @prefix@\nall:\ninstall:\n\tmkdir -p $(DESTDIR)$(prefix)/share\n"
        "\techo 'LIBOBJS=@LIBOBJS@' > $(DESTDIR)$(prefix)/share/wfsite.txt\n"
    )
    prefix = deps.build_native(lib("wfsite", src, "autotools"), None, TARGET)
    assert (prefix.path / "share" / "wfsite.txt").read_text().strip() == "LIBOBJS="
    asked = lib("wfsite", src, "autotools", ("ac_cv_func_memcmp_working=no",))
    prefix = deps.build_native(asked, None, TARGET)
    assert "memcmp" in (prefix.path / "share" / "wfsite.txt").read_text()
