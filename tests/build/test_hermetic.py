"""Hermetic cross builds: the zig wrappers answer like gcc, host config tools and pkg-config folders
are shadowed, and a compile or link command naming a host folder fails the build, naming it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.projects import make_meson_sdist, make_sdist

import builder.build.toolchain.host as host
from builder.build.natives.resolve import Missing, missing_from_log
from builder.build.pipeline import BuildResult, build_sdist
from builder.build.toolchain.host import CrossToolchain, zig_clang_version
from builder.build.toolchain.leaks import scan_args, scan_commands
from builder.build.toolchain.namespace import userns_available
from builder.common.outcome import Outcome
from builder.recipes.recipe import TestSpec

TARGET = "manylinux_2_17_aarch64"


def _cross(sdist: Path, tmp_path: Path, **kw: object) -> BuildResult:
    """The sdist cross-built for TARGET and CPython 3.11 (out/ and logs/ under tmp_path)."""
    project = sdist.name.rsplit("-", 1)[0].replace("_", "-")
    return build_sdist(
        sdist, project=project, version="1.0.0", python="3.11", target=TARGET,
        out_dir=tmp_path / "out", log_dir=tmp_path / "logs", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _ask(tc: CrossToolchain, *args: str) -> str:
    proc = subprocess.run(
        [tc.tool("cc"), "-O2", *args], capture_output=True, text=True, env=os.environ
    )
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout.strip()


def test_wrappers_answer_the_questions_build_scripts_ask_like_gcc() -> None:
    tc = CrossToolchain(TARGET)
    assert _ask(tc, "-dumpversion") == zig_clang_version() == _ask(tc, "-dumpfullversion")
    assert _ask(tc, "-dumpmachine") == "aarch64-linux-gnu" == _ask(tc, "-print-multiarch")
    assert "clang version" in _ask(tc, "--version") and "Target: aarch64-linux-gnu" in _ask(
        tc, "--version"
    )
    dirs = _ask(tc, "-print-search-dirs")
    assert "libraries: =" in dirs and "/usr/lib" not in dirs  # clang's answer names host folders
    assert _ask(tc, "-print-prog-name=ar") == str(tc.bin / "ar")
    assert _ask(tc, "-print-prog-name=nm") == "nm"
    assert _ask(tc, "-print-file-name=libc.so") == "libc.so"
    assert _ask(tc, "-print-sysroot") == ""
    # meson asks for the predefined macros from standard input, with no -x
    for tool, macro in (("cc", "__aarch64__"), ("c++", "__cplusplus")):
        proc = subprocess.run(
            [tc.tool(tool), "-E", "-dM", "-"], input="", capture_output=True, text=True
        )
        assert proc.returncode == 0 and f"#define {macro} " in proc.stdout, proc.stderr


def test_a_passed_through_target_triple_is_replaced_by_the_floor(tmp_path: Path) -> None:
    tc = CrossToolchain(TARGET)
    (tmp_path / "t.c").write_text("int f(void) { return 1; }\n")
    for flags in (["--target=aarch64-unknown-linux-gnu"], ["-target", "aarch64-linux-gnu.2.17"]):
        out = tmp_path / "t.o"
        subprocess.run([tc.tool("cc"), *flags, "-c", tmp_path / "t.c", "-o", out], check=True)
        assert out.read_bytes()[:4] == b"\x7fELF"


def test_a_version_script_naming_symbols_the_link_lacks_links_as_with_gnu_ld(
    tmp_path: Path,
) -> None:
    """alsa-lib's version script lists symbols of features switched off: GNU ld ignores them."""
    tc = CrossToolchain(TARGET)
    (tmp_path / "u.c").write_text("int wf_here(void) { return 0; }\n")
    (tmp_path / "u.map").write_text("WF_1 { global: wf_here; wf_switched_off; local: *; };\n")
    out = tmp_path / "libu.so"
    script = f"-Wl,--version-script={tmp_path / 'u.map'}"
    subprocess.run(
        [tc.tool("cc"), "-shared", "-fPIC", script, tmp_path / "u.c", "-o", out], check=True
    )
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", out], capture_output=True, text=True)
    assert "wf_here@@WF_1" in syms.stdout


def test_objects_named_so_link_as_objects_and_shared_libraries_as_libraries(
    tmp_path: Path,
) -> None:
    """krb5 names its PIC objects *.so and links them into its libraries; zig took every .so
    input for a shared library and failed ("version '.2.17' in target triple ... is invalid")."""
    tc = CrossToolchain(TARGET)
    cc = tc.tool("cc")
    (tmp_path / "a.c").write_text("int wf_a(void) { return 1; }\n")
    (tmp_path / "b.c").write_text("int wf_a(void);\nint wf_b(void) { return wf_a() + 1; }\n")
    subprocess.run([cc, "-c", "-fPIC", tmp_path / "a.c", "-o", tmp_path / "a.so"], check=True)
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-Wl,-h,libwfa.so.1",
            tmp_path / "a.so",
            "-o",
            tmp_path / "liba.so",
        ],
        check=True,
    )
    syms = subprocess.run(
        ["readelf", "--dyn-syms", tmp_path / "liba.so"], capture_output=True, text=True
    ).stdout
    assert "wf_a" in syms
    # A real shared library given as an input is still linked as one (a NEEDED entry).
    subprocess.run([cc, "-c", "-fPIC", tmp_path / "b.c", "-o", tmp_path / "b.o"], check=True)
    subprocess.run(
        [cc, "-shared", tmp_path / "b.o", tmp_path / "liba.so", "-o", tmp_path / "libb.so"],
        check=True,
    )
    dyn = subprocess.run(["readelf", "-d", tmp_path / "libb.so"], capture_output=True, text=True)
    assert "Shared library: [libwfa.so.1]" in dyn.stdout


def test_date_and_time_macros_compile_and_follow_source_date_epoch(tmp_path: Path) -> None:
    """zig makes __DATE__ an error (-Werror=date-time); gcc does not even warn (OpenLDAP's version
    strings). They compile, with the date SOURCE_DATE_EPOCH gives, as the builds set it."""
    tc = CrossToolchain(TARGET)
    (tmp_path / "d.c").write_text('const char wf_built[] = "built " __DATE__ " " __TIME__;\n')
    env = os.environ | {"SOURCE_DATE_EPOCH": "946684800"}
    cmd = [tc.tool("cc"), "-c", tmp_path / "d.c", "-o", tmp_path / "d.o"]
    subprocess.run(cmd, env=env, check=True)
    strings = subprocess.run(["strings", tmp_path / "d.o"], capture_output=True, text=True).stdout
    assert "built Jan  1 2000 00:00:00" in strings
    # A build that asks for the error itself still gets it.
    refused = subprocess.run([*cmd, "-Werror=date-time"], env=env, capture_output=True)
    assert refused.returncode != 0


def test_flags_put_last_outrank_a_librarys_own_werror(tmp_path: Path) -> None:
    """gcc never counts a lost qualifier as an incompatible pointer type; clang does, so krb5's own
    -Werror=incompatible-pointer-types (after CFLAGS) failed C that gcc builds. Native library
    builds set LAST_FLAGS_VAR, which the wrappers put after every other argument."""
    from builder.build.natives import LAST_C_FLAGS, _build_env

    tc = CrossToolchain(TARGET)
    (tmp_path / "q.c").write_text("char *wf_q(const char *s) { char *p; p = s; return p; }\n")
    cmd = [tc.tool("cc"), "-c", "-Werror=incompatible-pointer-types", tmp_path / "q.c"]
    cmd += ["-o", tmp_path / "q.o"]
    plain = {k: v for k, v in os.environ.items() if k != host.LAST_FLAGS_VAR}
    refused = subprocess.run(cmd, env=plain, capture_output=True, text=True)
    assert refused.returncode != 0 and "discards qualifiers" in refused.stderr
    native = _build_env(tc, {})
    assert native[host.LAST_FLAGS_VAR] == " ".join(LAST_C_FLAGS)
    subprocess.run(cmd, env=plain | {host.LAST_FLAGS_VAR: native[host.LAST_FLAGS_VAR]}, check=True)


@pytest.mark.parametrize("form", [["-Wl,-h,libwfh.so.3"], ["-Wl,-h", "-Wl,libwfh.so.3"]])
def test_gnu_lds_h_names_the_soname(tmp_path: Path, form: list[str]) -> None:
    """krb5 links with -Wl,-h,<soname> (GNU ld's alias of -soname); zig knew only -soname."""
    tc = CrossToolchain(TARGET)
    (tmp_path / "h.c").write_text("int wf_h(void) { return 0; }\n")
    out = tmp_path / "libwfh.so"
    subprocess.run(
        [tc.tool("cc"), "-shared", "-fPIC", *form, tmp_path / "h.c", "-o", out], check=True
    )
    dyn = subprocess.run(["readelf", "-d", out], capture_output=True, text=True).stdout
    assert "Library soname: [libwfh.so.3]" in dyn


@pytest.mark.parametrize("form", ["-Wl,{}", "{}"])
def test_an_implicit_linker_script_links_its_symbol_aliases(tmp_path: Path, form: str) -> None:
    """libattr links `-Wl,libattr.lds`, a script of versioned aliases (GNU ld reads a text input as
    a script; zig's driver rejects it): the wrapper hands it to lld, and the aliases are exported."""
    tc = CrossToolchain(TARGET)
    (tmp_path / "a.c").write_text("int wf_impl(void) { return 1; }\n")
    (tmp_path / "v.map").write_text("WF_1.0 { global: wf_get; local: *; };\n")
    (tmp_path / "a.lds").write_text('"wf_get@WF_1.0" = wf_impl;\n')
    out = tmp_path / "liba.so"
    cmd = [tc.tool("cc"), "-shared", "-fPIC", f"-Wl,--version-script,{tmp_path / 'v.map'}"]
    cmd += [form.format(tmp_path / "a.lds"), tmp_path / "a.c", "-o", out]
    subprocess.run(cmd, check=True)
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", out], capture_output=True, text=True)
    assert "wf_get@WF_1.0" in syms.stdout


@pytest.mark.parametrize(
    "form",
    [
        ["-Wl,-version-script", "-Wl,{}"],
        ["-Wl,--version-script", "-Wl,{}"],
        ["-Wl,{}"],
        ["-Wl,--version-script", "{}"],
    ],
)
def test_libtools_split_version_script_forms_link(tmp_path: Path, form: list[str]) -> None:
    """libtool writes `${wl}-version-script ${wl}FILE` (portaudio, curl): one dash, two args;
    krb5 `-Wl,--version-script FILE`, the file a plain argument that gcc passes on in order."""
    tc = CrossToolchain(TARGET)
    (tmp_path / "v.c").write_text("int wf_visible(void) { return 1; }\n")
    (tmp_path / "v.ver").write_text("WF_1 { global: wf_visible; local: *; };\n")
    out = tmp_path / "libv.so"
    args = [a.format(tmp_path / "v.ver") for a in form]
    subprocess.run(
        [tc.tool("cc"), "-shared", "-fPIC", *args, tmp_path / "v.c", "-o", out], check=True
    )
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", out], capture_output=True, text=True)
    assert "wf_visible@@WF_1" in syms.stdout


def test_a_version_script_in_libtools_comma_form_links(tmp_path: Path) -> None:
    tc = CrossToolchain(TARGET)
    (tmp_path / "v.c").write_text("int wf_visible(void) { return 1; }\n")
    (tmp_path / "v.lds").write_text("WF_1 { global: wf_visible; local: *; };\n")
    out = tmp_path / "libv.so"
    script = f"-Wl,--version-script,{tmp_path / 'v.lds'}"  # zig alone: unsupported linker arg
    subprocess.run(
        [tc.tool("cc"), "-shared", "-fPIC", script, tmp_path / "v.c", "-o", out], check=True
    )
    assert out.read_bytes()[:4] == b"\x7fELF"


def test_the_default_system_folders_mean_the_targets(tmp_path: Path) -> None:
    # setup.py files add -I/usr/include -I/usr/local/include "to be safe" (PyAudio): dropped, so
    # zig's target headers are used; the command log (what the scan sees) no longer names them.
    tc = CrossToolchain(TARGET)
    (tmp_path / "t.c").write_text("#include <stdio.h>\nint f(void) { return L_tmpnam; }\n")
    log = tmp_path / "cc.log"
    env = {**os.environ, host.COMMAND_LOG_VAR: str(log)}
    cmd = [tc.tool("cc"), "-I/usr/include", "-I/usr/local/include", "-I/usr/include/libxml2"]
    subprocess.run([*cmd, "-c", tmp_path / "t.c", "-o", tmp_path / "t.o"], env=env, check=True)
    leaks = scan_commands(log)
    assert [leak.argument for leak in leaks] == ["-I/usr/include/libxml2"]


def test_the_environment_sees_no_host_pkgconfig_folder_or_config_tool(tmp_path: Path) -> None:
    env = {**os.environ, **CrossToolchain(TARGET).env()}
    # The host has zlib's .pc (zlib1g-dev); the cross environment must not find it.
    host_has = subprocess.run(["pkg-config", "--exists", "zlib"], check=False).returncode == 0
    proc = subprocess.run(["pkg-config", "--exists", "zlib"], env=env, check=False)
    assert host_has, "the host needs zlib1g-dev for this test"
    assert proc.returncode != 0
    for name in host.host_config_tools()[:3]:
        p = subprocess.run([name, "--cflags"], env=env, capture_output=True, text=True)
        assert p.returncode == 127 and "not available for the target" in p.stderr, name


@pytest.mark.parametrize(
    ("args", "leak"),
    [
        (["-I/usr/include/libxml2", "-c", "x.c"], "-I/usr/include/libxml2"),
        (["-isystem", "/usr/local/include"], "-isystem /usr/local/include"),
        (["-L/usr/lib/x86_64-linux-gnu", "-lxml2"], "-L/usr/lib/x86_64-linux-gnu"),
        (["x.o", "/usr/lib/x86_64-linux-gnu/libz.so"], "/usr/lib/x86_64-linux-gnu/libz.so"),
        (["-Wl,-rpath,/usr/lib", "x.o"], "-Wl,-rpath,/usr/lib"),
        (["-D__x86_64__", "-c", "x.c"], "-D__x86_64__"),
        (["-msse4.2", "-c", "x.c"], "-msse4.2"),
        (["-L/opt/py/lib", "-lpython3.11"], "-L/opt/py/lib"),
        (["-D__x86_64", "-c", "x.c"], "-D__x86_64"),
        # SWIG reads the host's headers itself: its wrapper drops nothing, not even /usr/include
        (["swig", "-python", "-I/usr/include", "-o", "/b/x_wrap.c", "/b/x.i"], "-I/usr/include"),
        (["swig4.0", "-python", "-D__x86_64__", "x.i"], "-D__x86_64__"),
    ],
)
def test_leaks_are_found(args: list[str], leak: str) -> None:
    found = scan_args(args, host_libdirs=["/opt/py/lib"])
    assert [a for a, _ in found] == [leak]
    assert ("SWIG reads the headers" in found[0][1]) == args[0].startswith("swig")


def test_allowed_and_target_paths_are_not_leaks(tmp_path: Path) -> None:
    args = ["-I/usr/include/python3.11", f"-I{tmp_path}/prefix/include", "-L/root/x/lib", "-O2"]
    assert scan_args(args, allowed=["/usr/include/python3.11"]) == []
    log = tmp_path / "cc.log"
    log.write_text(f"{tmp_path}\t-c a.c -I/usr/include\n{tmp_path}\t-c b.c -I/usr/include\n")
    leaks = scan_commands(log)
    assert len(leaks) == 1 and "-c a.c -I/usr/include" in str(leaks[0])


@pytest.fixture
def host_swig() -> None:
    """Debian's swig on the host (tests/debian-packages.txt), installed here when missing."""
    try:
        host.ensure_host_packages(["swig"])
    except host.ToolchainError as exc:
        pytest.skip(f"needs Debian's swig on the host and cannot install it: {exc}")


def test_the_swig_wrapper_logs_its_command_and_runs_the_hosts(
    host_swig: None, tmp_path: Path
) -> None:
    tc = CrossToolchain(TARGET)
    env = {**os.environ, **tc.env(), host.COMMAND_LOG_VAR: str(tmp_path / "cc.log")}
    (tmp_path / "wf.i").write_text("%module wf\nint wf_answer(void);\n")
    cmd = ["swig", "-python", "-I/usr/include/x86_64-linux-gnu", "-o", "wf_wrap.c", "wf.i"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "wf_answer" in (tmp_path / "wf_wrap.c").read_text()
    (leak,) = scan_commands(tmp_path / "cc.log")
    assert leak.argument == "-I/usr/include/x86_64-linux-gnu" and leak.cwd == str(tmp_path)
    assert leak.command.startswith("swig -python")


@pytest.fixture
def fake_host_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host `wffoo-config` that answers with host folders, as xml2-config does."""
    bindir = tmp_path / "hostbin"
    bindir.mkdir()
    tool = bindir / "wffoo-config"
    tool.write_text("#!/bin/sh\necho -I/usr/include/wffoo\n")
    tool.chmod(0o755)
    monkeypatch.setattr(host, "HOST_TOOL_DIRS", (str(bindir), *host.HOST_TOOL_DIRS))
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    return tool


CALLS_CONFIG = (
    "import subprocess, shlex\n"
    "p = subprocess.run(['wffoo-config', '--cflags'], capture_output=True, text=True)\n"
    "if p.returncode: raise RuntimeError('wffoo-config failed: ' + p.stderr.strip())\n"
    "EXTRA = shlex.split(p.stdout)\n"
)


@pytest.mark.slow
def test_a_host_config_tool_is_shadowed_in_the_build(fake_host_tool: Path, tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-cfg", c_extension=True, setup_prelude=CALLS_CONFIG)
    r = _cross(sdist, tmp_path, test=TestSpec(imports=("wf_cfg",)))
    assert r.status == Outcome.FAILED and r.step == "build", r.message
    assert "wffoo-config is not available for the target" in r.error, r.error


@pytest.mark.slow
def test_a_host_include_folder_fails_the_build_naming_the_command(
    fake_host_tool: Path, tmp_path: Path
) -> None:
    # The sdist hard-codes host folders (as setup.py files do after asking a host tool). In the
    # hermetic build /usr/include is the target's (no leak there); /usr/lib is still the host's.
    flags = "import os\nos.environ['CFLAGS'] = '-I/usr/include/wffoo'\n"
    flags += "os.environ['LDFLAGS'] = '-L/usr/lib/x86_64-linux-gnu'\n"
    sdist = make_sdist(tmp_path / "sdist", "wf-leak", c_extension=True, setup_prelude=flags)
    r = _cross(sdist, tmp_path, test=TestSpec(imports=("wf_leak",)))
    assert r.status == Outcome.FAILED and r.step == "host leak", r.message
    assert r.error.startswith("host leak: -L/usr/lib/x86_64-linux-gnu"), r.error
    assert "-I/usr/include/wffoo (" not in r.error and "more in the log" not in r.error
    assert not list((tmp_path / "out").glob("*.whl"))


# As setup.py files that run SWIG themselves do (only in the cross build: the sdist is made on the
# host): the host's multiarch headers and the host's architecture define.
RUNS_SWIG = (
    "import os, subprocess, tempfile\n"
    "if os.environ.get('_PYTHON_HOST_PLATFORM'):\n"
    "    d = tempfile.mkdtemp()\n"
    "    with open(os.path.join(d, 'wf.i'), 'w') as f:\n"
    "        f.write('%module wf\\nint wf_answer(void);\\n')\n"
    "    subprocess.run(['swig', '-python', '-I/usr/include/x86_64-linux-gnu', '-D__x86_64__',\n"
    "                    '-o', os.path.join(d, 'wf_wrap.c'), os.path.join(d, 'wf.i')], check=True)\n"
)


@pytest.mark.slow
def test_swig_reading_host_headers_fails_the_build_naming_the_swig_command(
    host_swig: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    sdist = make_sdist(tmp_path / "sdist", "wf-swig", c_extension=True, setup_prelude=RUNS_SWIG)
    r = _cross(sdist, tmp_path, test=TestSpec(imports=("wf_swig",)))
    assert r.status == Outcome.FAILED and r.step == "host leak", r.message
    # -I/usr/include/... is the target's in the hermetic build; the host's define is not
    assert r.error.startswith("host leak: -D__x86_64__") and "`swig -python" in r.error, r.error
    assert "SWIG reads the headers" in r.error
    assert not list((tmp_path / "out").glob("*.whl"))


@pytest.mark.slow
def test_meson_python_sdist_is_cross_built_with_a_cross_file(tmp_path: Path) -> None:
    sdist = make_meson_sdist(tmp_path / "sdist", "wf-meson")
    call = (
        "import wf_meson; assert wf_meson.triangle(4) == 10; assert wf_meson.machine() == 'aarch64'"
    )
    r = _cross(sdist, tmp_path, test=TestSpec(imports=("wf_meson", "wf_meson._native"), call=call))
    assert r.status == Outcome.TESTED, r.message
    log = r.log.read_text()
    assert "--cross-file=" in log and "0 leaks" in log
    assert "libpython" not in log.split("host leak scan")[0].split("meson-python: cross file")[1]


# As mysqlclient's setup.py does: ask pkg-config quietly for each name it knows, then fail in its own
# words, naming none. (Only in the cross build: the sdist itself is made on the host.)
ASKS_QUIETLY = (
    "import os, subprocess, sys\n"
    "if os.environ.get('_PYTHON_HOST_PLATFORM'):\n"
    "    for name in ('wfquiet', 'wfquiet-compat'):\n"
    "        if subprocess.run(['pkg-config', '--exists', name + ' >= 1.0']).returncode == 0:\n"
    "            break\n"
    "    else:\n"
    "        sys.exit('Can not find valid pkg-config name.')\n"
)


@pytest.mark.slow
def test_modules_asked_of_pkg_config_quietly_are_named_in_the_log(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist", "wf-quiet", c_extension=True, setup_prelude=ASKS_QUIETLY)
    r = _cross(sdist, tmp_path, test=TestSpec(imports=("wf_quiet",)))
    assert r.status == Outcome.FAILED and r.step == "build", r.message
    text = r.log.read_text()
    assert missing_from_log(text) == [
        Missing("pkg-config", "wfquiet"),
        Missing("pkg-config", "wfquiet-compat"),
    ]


# As evdev's setup.py does: read kernel headers from /usr/include itself to generate C. In the cross
# build /usr/include is the target's headers (zig's), never the host's.
READS_HEADERS = (
    "import os\n"
    "if os.environ.get('_PYTHON_HOST_PLATFORM'):\n"
    "    assert not os.path.exists('/usr/include/x86_64-linux-gnu'), 'host headers are visible'\n"
    "    text = open('/usr/include/asm/unistd_64.h').read()\n"
    "    assert '#define __NR_io_setup 0' in text, 'not the aarch64 system call numbers'\n"
)


@pytest.mark.slow
@pytest.mark.skipif(not userns_available(), reason="needs user namespaces (unshare --user)")
def test_a_build_script_reading_usr_include_reads_the_targets_headers(tmp_path: Path) -> None:
    assert Path("/usr/include/x86_64-linux-gnu").is_dir()  # the host's, outside the build
    sdist = make_sdist(tmp_path / "sdist", "wf-hdr", c_extension=True, setup_prelude=READS_HEADERS)
    r = _cross(sdist, tmp_path, test=TestSpec(imports=("wf_hdr._native",)))
    assert r.status == Outcome.TESTED, (r.message, r.log.read_text()[-3000:])
    assert "/usr/include is the target's headers" in r.log.read_text()


def test_python_config_answers_for_the_target_cpython(tmp_path: Path) -> None:
    """A build script asking python3-config gets the aarch64 CPython's answers, naming no host
    library folder; outside a cross build of an extension the stand-in is shadowed like the others."""
    from builder.build.backends.cross import cross_build_environment
    from builder.build.toolchain.host import find_python, python_host_dirs

    python = find_python("3.11")
    subprocess.run([python, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    env = cross_build_environment(tmp_path / "venv" / "bin" / "python", "3.11", TARGET)

    def ask(tool: str, *args: str, rc: int = 0) -> str:
        p = subprocess.run([tool, *args], env=env, capture_output=True, text=True)
        assert p.returncode == rc, (tool, args, p.stderr)
        return p.stdout if rc == 0 else p.stderr

    includes, libdirs = python_host_dirs(python)
    for tool in ("python3-config", "python3.11-config"):
        assert ask(tool, "--extension-suffix") == ".cpython-311-aarch64-linux-gnu.so\n"
        assert ask(tool, "--abiflags") == "\n"
        flags = ask(tool, "--includes", "--cflags").split()
        assert f"-I{includes[0]}" in flags and "-O2" in flags
        assert scan_args(flags, allowed=includes, host_libdirs=libdirs) == []
        assert ask(tool, "--ldflags") == ask(tool, "--libs") == "\n"  # no host -L, no libpython
        assert ask(tool, "--ldflags", "--embed") == "-lpython3.11\n"
        prefix, exec_prefix, configdir = ask(
            tool, "--prefix", "--exec-prefix", "--configdir"
        ).split()
        assert configdir in libdirs and Path(prefix).is_dir() and Path(exec_prefix).is_dir()
        assert "Usage:" in ask(tool, "--frobnicate", rc=1)
    assert "not 3.12" in ask("python3.12-config", "--includes", rc=127)
    # A native library's build (the toolchain's environment alone) has no target CPython.
    env = {**os.environ, **CrossToolchain(TARGET).env()}
    env.pop("_PYTHON_SYSCONFIGDATA_NAME", None)
    assert "not available here" in ask("python3-config", "--includes", rc=127)


def test_a_build_systems_probes_are_not_leaks(tmp_path: Path) -> None:
    """configure tries -msse4.2 on a conftest (PostgreSQL's CRC32C check); the target refuses it
    and nothing of it reaches the build. The same flag in a real compile is a leak."""
    log = tmp_path / "cc.log"
    log.write_text(
        f"{tmp_path}\t-o conftest -O2 -msse4.2 conftest.c\n"
        f"{tmp_path}/CMakeFiles/CMakeScratch/TryCompile-x\t-c cmTC_1.c -I/usr/include/foo\n"
        f"{tmp_path}\t-c crc.c -msse4.2 -o crc.o\n"
    )
    leaks = scan_commands(log)
    assert [leak.argument for leak in leaks] == ["-msse4.2"] and "crc.c" in leaks[0].command


@pytest.mark.slow
@pytest.mark.skipif(not userns_available(), reason="needs user namespaces (unshare --user)")
def test_a_hard_coded_usr_include_folder_finds_the_native_librarys_headers(tmp_path: Path) -> None:
    """pyscard's setup.py adds -I/usr/include/PCSC, where an aarch64 machine with the -dev package
    has winscard.h: the build's /usr/include shows the native libraries' include folders."""
    prefix = tmp_path / "prefix"
    (prefix / "include" / "wfpcsc").mkdir(parents=True)
    (prefix / "include" / "wfpcsc" / "wf_only_here.h").write_text("#define WF_HERE 1\n")
    sdist = make_sdist(
        tmp_path / "sdist",
        "wf-pcsc",
        c_extension=True,
        prelude_c="#include <wf_only_here.h>\n",
        setup_prelude=(
            "import os\n"
            "os.environ['CFLAGS'] = os.environ.get('CFLAGS', '') + ' -I/usr/include/wfpcsc'\n"
            "if os.environ.get('_PYTHON_HOST_PLATFORM'):\n"
            "    assert os.path.exists('/usr/include/wfpcsc/wf_only_here.h')\n"
        ),
    )
    r = _cross(sdist, tmp_path, prefixes=[prefix], test=TestSpec(imports=("wf_pcsc._native",)))
    assert r.status == Outcome.TESTED, (r.message, r.log.read_text()[-3000:])
    assert "under 1 native libraries' include folders" in r.log.read_text()
