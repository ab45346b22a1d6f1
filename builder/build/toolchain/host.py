"""The cross toolchain: zig as the aarch64 C/C++ compiler, host interpreters, qemu and test sysroots.

Everything is found or installed on first use and cached under `cache_dir()`:
- zig comes from the `ziglang` wheel (a pip dependency); its caches live in cache_dir()/"zig".
- `CrossToolchain(target)` writes small wrapper scripts (cc, c++, ar, ranlib, strip; swig when the
  host has it, logged for the leak scan) under cache_dir()/"toolchain"/<triple>/bin, so build
  systems that want one program per tool get one.
  The triple carries the glibc floor of the target tag (`aarch64-linux-gnu.2.17`): zig then links
  against that glibc's symbol versions and auditwheel can tag the result manylinux_2_17.
- `sysconfigdata(python, target)` writes the aarch64 `_sysconfigdata` module that makes a host CPython
  build aarch64 extensions (suffix, SOABI, compiler) when selected with `_PYTHON_SYSCONFIGDATA_NAME`.
- `find_python("3.11")` finds a host interpreter (PATH, pyenv, uv); `ensure_qemu()` finds or installs
  qemu-user; `test_sysroot("3.11")` is a Debian arm64 folder with that Python to run tests in.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.build.toolchain.leaks import rules as leak_rules
from builder.common.atomic import atomic_write_text, atomic_writer
from builder.common.paths import cache_dir
from builder.common.targets import Target, parse_target

# Debian suites whose arm64 archive carries a given CPython (the package is `python3.X`), checked
# with `apt-cache policy` in each suite: bullseye has 3.9, bookworm 3.11, trixie 3.13, sid 3.13,
# 3.14 and 3.15. No Debian release or sid ships 3.10 or 3.12 any more (each lived only in
# testing/sid between releases), so wheels for them are built but not run.
TEST_SUITES: dict[str, str] = {
    "3.9": "bullseye",
    "3.11": "bookworm",
    "3.13": "trixie",
    "3.14": "sid",
    "3.15": "sid",
}
APT_LOCK_TIMEOUT = "600"  # seconds: other processes (other builds, unattended upgrades) may hold it

Progress = Callable[[str], None]


class ToolchainError(RuntimeError):
    """A tool the build needs is missing and could not be installed; the message says which."""


class PythonNotFound(ToolchainError):
    """No host interpreter for a requested Python version."""


# --------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class CrossTarget:
    """What the compiler needs to know about a Linux target tag."""

    target: Target
    libc: str  # "gnu" | "musl"

    @property
    def arch(self) -> str:
        return self.target.arch

    @property
    def multiarch(self) -> str:
        """The GNU triplet Debian and CPython use: aarch64-linux-gnu / aarch64-linux-musl."""
        return f"{self.arch}-linux-{self.libc}"

    @property
    def zig_triple(self) -> str:
        """zig's -target: the glibc floor is part of it (musl is linked statically by version)."""
        if self.libc == "gnu":
            major, minor = self.target.version
            return f"{self.arch}-linux-gnu.{major}.{minor}"
        return f"{self.arch}-linux-musl"


def cross_target(tag: str) -> CrossTarget:
    """Parse a Linux target tag (manylinux_2_17_aarch64, manylinux2014_aarch64, musllinux_1_2_aarch64)."""
    target = parse_target(tag)
    if target.os == "manylinux":
        return CrossTarget(target, "gnu")
    if target.os == "musllinux":
        return CrossTarget(target, "musl")
    raise ToolchainError(f"{tag}: the cross toolchain builds Linux targets only, not {target.os}")


def zig_triple(tag: str) -> str:
    """`manylinux_2_17_aarch64` -> `aarch64-linux-gnu.2.17`."""
    return cross_target(tag).zig_triple


# --------------------------------------------------------------------------------------------
# zig


def zig_cache_dirs() -> dict[str, str]:
    base = cache_dir() / "zig"
    return {"ZIG_GLOBAL_CACHE_DIR": str(base), "ZIG_LOCAL_CACHE_DIR": str(base)}


@functools.cache
def zig_command() -> tuple[str, ...]:
    """The zig executable shipped in the `ziglang` wheel (or `python -m ziglang` as a fallback)."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        raise ToolchainError(
            "the `ziglang` package is not installed in "
            f"{sys.prefix}: pip install ziglang (it is a wheelfarm dependency)"
        )
    exe = Path(spec.origin).parent / "zig"
    # Calling the binary directly saves a Python start per compiler call.
    return (str(exe),) if os.access(exe, os.X_OK) else (sys.executable, "-m", "ziglang")


def zig_version() -> str:
    proc = subprocess.run(
        [*zig_command(), "version"], capture_output=True, text=True, env=_zig_env()
    )
    if proc.returncode != 0:
        raise ToolchainError(f"zig version failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _zig_env() -> dict[str, str]:
    return {**os.environ, **zig_cache_dirs()}


# Flags Debian's or pyenv's sysconfig (or build scripts) pass that zig's linker rejects, and the
# compiler's own default search folders, which setup.py files name "to be safe" (PyAudio: -I/usr/include
# -I/usr/local/include): they mean "the system's", and in a cross build the system is the target, whose
# headers zig brings itself. A sub-folder (-I/usr/include/libxml2) is a host leak: it is kept, and the
# build fails naming it.
_DROPPED_FLAGS = (
    "-Wl,-Bsymbolic-functions",
    "-I/usr/include",
    "-I/usr/local/include",
    "-L/usr/lib",
    "-L/usr/local/lib",
    "-L/lib",
)
# Where the compiler wrappers append every command they run (cwd TAB argv), when set: the build
# scans it for host paths afterwards (builder.build.toolchain.leaks).
COMMAND_LOG_VAR = "WHEELFARM_CC_LOG"
# Flags the compiler wrappers put after every other argument, when set: after a build's own flags,
# where a project's -Werror=... comes later than CFLAGS (builder.build.natives: LAST_C_FLAGS).
LAST_FLAGS_VAR = "WHEELFARM_CC_LAST_FLAGS"
# Appended to the command log's name: the pkg-config modules a build asked for and did not get.
PKG_CONFIG_MISSES = ".pkg-config-misses"
# Where the real pkg-config is looked for (never the wrappers' own folder).
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def pkg_config_misses(commands_log: Path) -> list[str]:
    """The modules a build asked pkg-config for and did not get, in order, once each."""
    path = Path(f"{commands_log}{PKG_CONFIG_MISSES}")
    if not path.exists():
        return []
    return list(
        dict.fromkeys(line.strip() for line in path.read_text().splitlines() if line.strip())
    )


def host_generators() -> dict[str, str]:
    """name -> host executable of the code generators the leak rules name (`[programs]` in
    host_leaks.toml: swig, ...) that the host has, looked up in SYSTEM_PATH only."""
    found = {}
    for program in leak_rules().programs:
        for name in program.names:
            if real := shutil.which(name, path=SYSTEM_PATH):
                found[name] = real
    return found


# Colon-separated bin folders of the target prefixes: the config-tool stand-ins look there first.
TARGET_BIN_VAR = "WHEELFARM_TARGET_BIN"
# Colon-separated include folders of the target prefixes: a hermetic cross build overlays them on
# the target's /usr/include.
TARGET_INCLUDE_VAR = "WHEELFARM_TARGET_INCLUDE"


@functools.cache
def zig_clang_version() -> str:
    """The clang version inside zig ("22.1.8"): what `cc -dumpversion` answers."""
    proc = subprocess.run(
        [*zig_command(), "cc", "--version"], capture_output=True, text=True, env=_zig_env()
    )
    m = re.search(r"clang version (\d+(?:\.\d+)*)", proc.stdout)
    if not m:
        raise ToolchainError(f"zig cc --version gave no clang version: {proc.stdout[:200]!r}")
    return m.group(1)


@functools.cache
def target_include_dirs(target: str) -> tuple[Path, ...]:
    """The folders zig searches for <headers> when compiling C and C++ for `target` (a Linux tag):
    clang's own headers, libc++ and the target libc's (glibc or musl, with the kernel's). A header
    found there needs no library."""
    triple = zig_triple(target)
    cwd = Path(zig_command()[0]).parent
    dirs: list[Path] = []
    for driver, lang in (("cc", "c"), ("c++", "c++")):
        proc = subprocess.run(
            [*zig_command(), driver, "-target", triple, "-E", "-v", "-x", lang, os.devnull],
            capture_output=True,
            text=True,
            env=_zig_env(),
            cwd=cwd,
        )
        text = proc.stderr + proc.stdout
        m = re.search(
            r"#include <\.\.\.> search starts here:\n(.*?)\nEnd of search list", text, re.S
        )
        if proc.returncode != 0 or not m:
            raise ToolchainError(f"zig {driver} -v named no include folders: {text[-400:]!r}")
        for line in m.group(1).splitlines():
            folder = (cwd / line.strip()).resolve()
            if folder not in dirs:
                dirs.append(folder)
    return tuple(dirs)


def _gcc_answers(bin_dir: str, multiarch: str, triple: str, clang: str) -> str:
    """sh `case` answering the questions build scripts ask a gcc, for the target.

    zig cannot answer them itself: it hands its triple (with the glibc suffix) to clang's
    driver, which rejects it for -dumpversion and friends (exit 1; scripts then crash), and
    clang's -print-search-dirs would name the host's /usr/lib folders.
    """
    b = _sh_quote(bin_dir)
    return (
        'for a in "$@"; do case "$a" in\n'
        f"  -dumpversion|-dumpfullversion) echo {clang}; exit 0;;\n"
        f"  -dumpmachine|-print-multiarch) echo {multiarch}; exit 0;;\n"
        "  -print-sysroot) echo; exit 0;;\n"
        f"  -print-search-dirs) printf 'install: %s/\\nprograms: =%s\\nlibraries: =\\n' {b} {b};"
        " exit 0;;\n"
        "  -print-prog-name=*) n=${a#-print-prog-name=};"
        f' if [ -x {b}/"$n" ]; then echo {b}/"$n"; else echo "$n"; fi; exit 0;;\n'
        '  -print-file-name=*) echo "${a#-print-file-name=}"; exit 0;;\n'
        "  -print-libgcc-file-name) echo libgcc.a; exit 0;;\n"
        "  -print-multi-os-directory) echo ../lib; exit 0;;\n"
        "  -print-multi-directory) echo .; exit 0;;\n"
        "  -print-multi-lib) echo '.;'; exit 0;;\n"
        f"  --version) printf 'clang version {clang} (zig cc for {triple}, wheelfarm)\\n"
        f"Target: {multiarch}\\nThread model: posix\\n'; exit 0;;\n"
        "esac; done\n"
    )


class CrossToolchain:
    """zig wrappers for one target, generated on first use under
    cache_dir()/"toolchain"/<triple>/bin-<hash> (the hash of the scripts: builds running older or
    newer wrappers never overwrite each other's)."""

    TOOLS = ("cc", "c++", "ar", "ranlib", "strip")

    def __init__(self, target: str) -> None:
        self.target_tag = target
        self.cross = cross_target(target)
        self.triple = self.cross.zig_triple
        self.root = cache_dir() / "toolchain" / self.triple
        scripts = sorted(self._scripts("@BIN@").items())
        key = hashlib.sha256(repr((scripts, sorted(_stand_ins().items()))).encode()).hexdigest()
        self.bin = self.root / f"bin-{key[:12]}"
        self.shadow = self.root / f"shadow-{key[:12]}"
        self.empty_pkgconfig = self.root / "no-host-pkgconfig"

    def tool(self, name: str) -> Path:
        """Path of one wrapper (cc, c++, ar, ranlib, strip), generating the wrappers if needed."""
        if name not in self.TOOLS:
            raise KeyError(name)
        self.ensure()
        return self.bin / name

    def _scripts(self, bin_dir: str) -> dict[str, str]:
        zig = " ".join(_sh_quote(p) for p in zig_command())
        caches = "".join(f"export {k}={_sh_quote(v)}\n" for k, v in zig_cache_dirs().items())
        drop = " ".join(_sh_quote(f) for f in _DROPPED_FLAGS)
        answers = _gcc_answers(bin_dir, self.cross.multiarch, self.triple, zig_clang_version())
        log = f'[ -n "${COMMAND_LOG_VAR}" ] && printf \'%s\\t%s\\n\' "$PWD" "$*" >> "${COMMAND_LOG_VAR}"\n'

        # Drop flags zig rejects, and any target a configure script passes through (zig's own
        # -target carries the glibc floor; `aarch64-unknown-linux-gnu.2.17` is rejected).
        # Standard input without -x (meson's `cc -E -dM -`): gcc assumes the driver's language,
        # zig's clang fails on its own triple; say the language.
        def filter_args(lang: str) -> str:
            return (
                # a text file named as a linker input: a version script or an implicit script
                '_script() { if [ -f "$1" ] && grep -qI . "$1"; then if grep -q "global:" "$1";'
                ' then a="-Wl,--version-script=$1"; else a="-Wl,-T,$1"; fi; fi; }\n'
                # an ELF relocatable object named *.so (krb5 names its PIC objects so): zig takes
                # any .so input for a shared library and fails; it gets a *.o name (a symlink)
                '_relobj() { case "$(od -An -tx1 -N17 "$1" 2>/dev/null | tr -d \' \\n\')" in'
                " 7f454c46????????????????????????01) return 0;; esac; return 1; }\n"
                'objdir=""; nobj=0\n'
                'skipnext=0; hasx=0; vs=0\nfor a in "$@"; do shift; skip=0\n'
                "  if [ $skipnext = 1 ]; then skipnext=0; continue; fi\n"
                # libtool splits -Wl,--version-script,FILE into two -Wl args (libattr); krb5
                # gives the file as a plain argument after it, which gcc passes on in order
                '  if [ $vs = 1 ]; then vs=0; case "$a" in\n'
                '    -Wl,*) a="-Wl,--version-script=${a#-Wl,}";;\n'
                '    -*) set -- "$@" -Wl,--version-script;;\n'
                '    *) a="-Wl,--version-script=$a";; esac; fi\n'
                f'  for d in {drop}; do [ "$a" = "$d" ] && skip=1; done\n'
                '  case "$a" in --target=*) skip=1;; -target) skipnext=1; skip=1;;\n'
                # libtool's -Wl,--version-script,FILE (libattr): zig takes only =FILE
                '    -Wl,--version-script,*) a="-Wl,--version-script=${a#-Wl,--version-script,}";;\n'
                '    -Wl,-version-script,*) a="-Wl,--version-script=${a#-Wl,-version-script,}";;\n'
                "    -Wl,--version-script|-Wl,-version-script) vs=1; skip=1;;\n"
                # GNU ld's -h, the soname (krb5's shared library rules): zig knows only -soname
                '    -Wl,-h,*) a="-Wl,-soname,${a#-Wl,-h,}";;\n'
                '    -Wl,-h) a="-Wl,-soname";;\n'
                # an implicit linker script given as an input (libattr: -Wl,libattr.lds, symbol
                # aliases): GNU ld takes it, zig's driver rejects it; lld reads it after -T (which
                # only adds to lld's built-in layout). A version script goes to --version-script.
                "    -Wl,-*) ;;\n"
                '    -Wl,*) f="${a#-Wl,}"; case "$f" in *,*) ;; *) _script "$f";; esac;;\n'
                '    *.lds) f="$a"; _script "$f";;\n'
                '    *.so) if [ -f "$a" ] && _relobj "$a"; then [ -n "$objdir" ] ||'
                ' objdir=$(mktemp -d); nobj=$((nobj+1)); l="$objdir/$nobj-${a##*/}.o";'
                ' ln -s "$(realpath "$a")" "$l"; a="$l"; fi;;\n'
                f'    -x|-x*) hasx=1;; -) [ $hasx = 1 ] || set -- "$@" -x {lang};; esac\n'
                '  [ $skip = 1 ] || set -- "$@" "$a"\n'
                "done\n"
                # GNU ld ignores a version script's names the link does not define (alsa-lib lists
                # symbols of features switched off); lld fails on them unless told otherwise
                'for a in "$@"; do case "$a" in -Wl,--version-script*)'
                ' set -- "$@" -Wl,--undefined-version; break;; esac; done\n'
                f'[ -n "${LAST_FLAGS_VAR}" ] && set -- "$@" ${LAST_FLAGS_VAR}\n'
            )

        def run(driver: str) -> str:
            """zig's driver for the arguments; it cleans up after the renamed objects, if any.
            zig makes __DATE__/__TIME__ an error (-Werror=date-time) where gcc does not even warn
            (OpenLDAP's version strings): a warning again, before the build's own flags; the
            builds set SOURCE_DATE_EPOCH, which clang honours, so the value is reproducible."""
            command = f'{zig} {driver} -target {self.triple} -Wno-error=date-time "$@"'
            return (
                f'if [ -n "$objdir" ]; then {command}; rc=$?; rm -rf "$objdir"; exit $rc; fi\n'
                f"exec {command}\n"
            )

        head = f"#!/bin/sh\n# generated by wheelfarm for {self.triple}\n{caches}"
        real_pkg_config = shutil.which("pkg-config", path=SYSTEM_PATH) or "pkg-config"
        # Code generators that read C headers (SWIG): logged with their name first for the leak
        # scan, then the host's program runs unchanged (its flags are the build's, leaks included).
        generators = {
            name: (
                f'{head}[ -n "${COMMAND_LOG_VAR}" ] && printf \'%s\\t%s\\n\' "$PWD" '
                f'{_sh_quote(name + " ")}"$*" >> "${COMMAND_LOG_VAR}"\n'
                f'exec {_sh_quote(real)} "$@"\n'
            )
            for name, real in host_generators().items()
        }
        return {
            **generators,
            # the host's pkg-config (PKG_CONFIG_LIBDIR names the target prefixes only), recording
            # each module a build asked for and did not get: setup.py scripts often ask quietly
            # (`--exists`) and then print their own words, or nothing, naming no module
            "pkg-config": (
                f'{head}{_sh_quote(real_pkg_config)} "$@"; rc=$?\n'
                f'if [ $rc != 0 ] && [ -n "${COMMAND_LOG_VAR}" ]; then for a in "$@"; do\n'
                '  m="${a%% *}"; case "$m" in ""|-*|"<"*|">"*|"="*|"!"*|[0-9]*) ;;\n'
                f'  *) printf \'%s\\n\' "$m" >> "${COMMAND_LOG_VAR}{PKG_CONFIG_MISSES}";; esac\n'
                "done; fi\nexit $rc\n"
            ),
            "cc": f"{head}{answers}{filter_args('c')}{log}{run('cc')}",
            "c++": f"{head}{answers}{filter_args('c++')}{log}{run('c++')}",
            "ar": f'{head}exec {zig} ar "$@"\n',
            "ranlib": f'{head}exec {zig} ranlib "$@"\n',
        }

    def ensure(self, progress: Progress | None = None) -> Path:
        """Write the wrapper scripts and config-tool stand-ins (idempotent); return the bin folder."""
        self.bin.mkdir(parents=True, exist_ok=True)
        for name, text in self._scripts(str(self.bin)).items():
            _write_executable(self.bin / name, text)
        strip = self.bin / "strip"
        host_strip = ensure_cross_strip(self.cross.arch, progress)
        if not strip.is_symlink() or os.readlink(strip) != str(host_strip):
            tmp = self.bin / ".strip.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(host_strip)
            os.replace(tmp, strip)
        self.shadow.mkdir(parents=True, exist_ok=True)
        for name, text in _stand_ins().items():
            _write_executable(self.shadow / name, text)
        self.empty_pkgconfig.mkdir(parents=True, exist_ok=True)
        return self.bin

    def env(self) -> dict[str, str]:
        """Variables that make C/C++ build systems use this toolchain (add to a build's environment).

        CFLAGS carries an optimisation level and -fno-sanitize=undefined: zig without -O builds
        Debug with UBSan. Include paths belong in CPPFLAGS (never CPATH, which overrides zig's libc
        headers).
        """
        self.ensure()
        flags = "-O2 -fno-sanitize=undefined"
        b = self.bin
        return {
            "CC": str(b / "cc"),
            "CXX": str(b / "c++"),
            "AR": str(b / "ar"),
            "RANLIB": str(b / "ranlib"),
            "STRIP": str(b / "strip"),
            "LDSHARED": f"{b / 'cc'} -shared",
            "LDCXXSHARED": f"{b / 'c++'} -shared",
            "CFLAGS": flags,
            "CXXFLAGS": flags,
            # The host's *-config tools are shadowed (stand-ins after the wrappers), and pkg-config
            # searches no host folder: a build sees the target's world only. Prefixes add theirs.
            "PATH": f"{b}{os.pathsep}{self.shadow}{os.pathsep}{os.environ.get('PATH', '')}",
            "PKG_CONFIG": str(b / "pkg-config"),
            "PKG_CONFIG_LIBDIR": str(self.empty_pkgconfig),
            "PKG_CONFIG_SYSROOT_DIR": "",
            **zig_cache_dirs(),
        }

    def include_view(self) -> Path:
        """The target's /usr/include as zig sees it: one folder of symlinks into zig's libc headers
        (the target's own first, as zig searches them), made once per zig version. A cross build
        sees it at /usr/include (builder.build.toolchain.namespace.hermetic_command), so a build
        script that reads headers itself (evdev's ecodes generator) reads the target's."""
        from importlib import metadata

        zig_lib = Path(zig_command()[0]).parent / "lib" / "libc" / "include"
        arch, libc = self.cross.arch, self.cross.libc
        order = [
            "any-linux-any",
            f"{arch}-linux-any",
            f"generic-{'glibc' if libc == 'gnu' else 'musl'}",
        ]
        order.append(f"{arch}-linux-{libc}")  # last wins: the most specific
        # symlinks into this zig: keyed by its folder too (another checkout has its own venv)
        where = hashlib.sha256(str(zig_lib).encode()).hexdigest()[:8]
        view = self.root / f"include-view-{metadata.version('ziglang')}-{libc}-{where}"
        if (view / ".complete").exists():
            return view
        staging = view.with_name(f"{view.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in order:
            layer = zig_lib / name
            for path in sorted(layer.rglob("*")):
                rel = path.relative_to(layer)
                if path.is_dir():
                    (staging / rel).mkdir(exist_ok=True)
                else:
                    (staging / rel).unlink(missing_ok=True)
                    (staging / rel).symlink_to(path)
        (staging / ".complete").write_text("\n".join(order) + "\n")
        try:
            os.replace(staging, view)
        except OSError:  # another build made it first
            shutil.rmtree(staging, ignore_errors=True)
        return view

    def sysconfigdata(self, python: Path) -> tuple[str, Path]:
        """(module name, folder) of the aarch64 `_sysconfigdata` for the host interpreter `python`."""
        return sysconfigdata(python, self)


def toolchain_for(target: str) -> CrossToolchain:
    """The zig toolchain of a target tag: CrossToolchain for Linux, MacToolchain for macosx_*."""
    if target.startswith("macosx_"):
        from builder.build.toolchain.macos import MacToolchain

        return MacToolchain(target)  # type: ignore[return-value]  # the same interface
    return CrossToolchain(target)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _write_executable(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    # Executable before the rename: a concurrent build must never run a 0644 wrapper.
    with atomic_writer(path) as fh:
        os.fchmod(fh.fileno(), 0o755)
        fh.write(text.encode())


# Host folders whose `*-config` / `*_config` programs describe host (x86_64) libraries.
HOST_TOOL_DIRS = ("/usr/local/bin", "/usr/bin", "/bin")
_NOT_CONFIG_TOOLS = frozenset({"pkg-config", "dpkg-config", "git-config", "apt-config"})


def host_config_tools() -> list[str]:
    """Names of the host's library config tools (xml2-config, pg_config, python3.11-config ...)."""
    names: set[str] = set()
    for folder in HOST_TOOL_DIRS:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                n = entry.name
                if (n.endswith("-config") or n.endswith("_config")) and n not in _NOT_CONFIG_TOOLS:
                    if re.search(r"pkg-?conf|pkgconf", n):
                        continue
                    names.add(n)
    return sorted(names)


# The CPython config tool: answered for the target CPython (python_config.py) rather than shadowed.
_PYTHON_CONFIG = re.compile(r"python(\d+(\.\d+)?t?)?-config")
PYTHON_CONFIG_SCRIPT = Path(__file__).with_name("python_config.py")


def _stand_ins() -> dict[str, str]:
    """name -> script of every stand-in in the shadow folder: the host's config tools (the
    arch-named `x86_64-linux-gnu-python3-config` among them: it names the host), and the CPython
    config tools under their plain names, answering for the target, whether the host has them or not
    (a pyenv shim later on PATH would answer for a host CPython).
    """
    out = {name: _config_stand_in(name) for name in host_config_tools()}
    plain = ["python-config", "python3-config", *(f"python3.{m}-config" for m in range(8, 16))]
    for name in {*plain, *out}:
        if _PYTHON_CONFIG.fullmatch(name):
            out[name] = _python_config_stand_in(name)
    return out


def _python_config_stand_in(name: str) -> str:
    """`python3-config` for the target CPython of a cross build: the build venv's interpreter with
    the target's sysconfigdata answers (python_config.py). Outside a cross build of an extension
    (a native library's build: no target CPython selected) it is shadowed like the other tools."""
    return (
        "#!/bin/sh\n"
        f"# generated by wheelfarm: {name} answering for the target CPython of a cross build\n"
        'if [ -z "$_PYTHON_SYSCONFIGDATA_NAME" ]; then\n'
        f'  echo "wheelfarm: {name} is not available here (no target CPython is selected: it answers'
        ' in cross builds of Python extensions only)" >&2\n'
        "  exit 127\nfi\n"
        'py=python3; if [ -n "$VIRTUAL_ENV" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then'
        ' py="$VIRTUAL_ENV/bin/python"; fi\n'
        f'exec "$py" {_sh_quote(str(PYTHON_CONFIG_SCRIPT))} {_sh_quote(name)} "$@"\n'
    )


def _config_stand_in(name: str) -> str:
    """A stand-in for the host's `name`: the target's copy from a prefix when there is one that
    runs here (a script), else exit 127 ("not found") with the reason on stderr."""
    q = _sh_quote(name)
    return (
        "#!/bin/sh\n"
        f"# generated by wheelfarm: the host's {name} describes x86_64 libraries\n"
        f"IFS=:; for d in ${TARGET_BIN_VAR}; do\n"
        f'  if [ -f "$d"/{q} ] && head -c 2 "$d"/{q} | grep -q "#!"; then unset IFS; exec "$d"/{q} "$@"; fi\n'
        "done\n"
        f"echo \"wheelfarm: {name} is not available for the target (the host's describes x86_64 "
        'libraries and is shadowed in cross builds); declare the library as a [[native]] entry" >&2\n'
        "exit 127\n"
    )


# --------------------------------------------------------------------------------------------
# Host packages (apt-get)


def missing_host_packages(packages: Sequence[str]) -> list[str]:
    missing = []
    for pkg in packages:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        )
        if proc.returncode != 0 or "install ok installed" not in proc.stdout:
            missing.append(pkg)
    return missing


def ensure_host_packages(packages: Sequence[str], progress: Progress | None = None) -> list[str]:
    """Install the Debian packages of `packages` that are missing; return those installed.

    Waits for the dpkg lock (other installs may be running); raises ToolchainError with apt's
    message when it cannot install (not root, unknown package, no network).
    """
    missing = missing_host_packages(packages)
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        raise ToolchainError(f"missing host packages {', '.join(missing)} and no apt-get here")
    if os.geteuid() != 0:
        raise ToolchainError(
            f"missing host packages {', '.join(missing)}: run "
            f"`sudo apt-get install {' '.join(missing)}` (wheelfarm installs them only as root)"
        )
    if progress:
        progress(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"]
    install = ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *missing]
    proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # maybe stale package lists: refresh once and retry
        subprocess.run(["apt-get", *lock, "update", "-q"], capture_output=True, env=env)
        proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("E:")]
        raise ToolchainError(
            f"apt-get install {' '.join(missing)} failed: "
            + ("; ".join(errors) or proc.stderr.strip()[-400:])
        )
    return missing


def ensure_cross_strip(arch: str = "aarch64", progress: Progress | None = None) -> Path:
    """`aarch64-linux-gnu-strip` from Debian's binutils (host `strip` cannot read aarch64 ELF)."""
    name = f"{arch}-linux-gnu-strip"
    if found := shutil.which(name):
        return Path(found)
    ensure_host_packages([f"binutils-{arch.replace('_', '-')}-linux-gnu"], progress)
    if found := shutil.which(name):
        return Path(found)
    raise ToolchainError(f"{name} not found after installing binutils-{arch}-linux-gnu")


def find_qemu(arch: str = "aarch64") -> Path | None:
    for name in (f"qemu-{arch}", f"qemu-{arch}-static"):
        if found := shutil.which(name):
            return Path(found)
    return None


def ensure_qemu(arch: str = "aarch64", progress: Progress | None = None) -> Path:
    """qemu-user's `qemu-aarch64`, installed from Debian (`qemu-user`) when missing."""
    if found := find_qemu(arch):
        return found
    ensure_host_packages(["qemu-user"], progress)
    if found := find_qemu(arch):
        return found
    raise ToolchainError(f"qemu-{arch} not found after installing qemu-user")


# --------------------------------------------------------------------------------------------
# Host interpreters


@dataclass(frozen=True)
class HostPython:
    """A host CPython usable for cross builds: right version, headers present, venv works."""

    version: str  # "3.11"
    executable: Path
    full_version: str  # "3.11.7"
    source: str  # "PATH" | "pyenv" | "uv"


_PROBE = (
    "import json, os, sys, sysconfig, importlib.util as u;"
    "inc = sysconfig.get_config_var('INCLUDEPY') or '';"
    "print(json.dumps({'v': '%d.%d' % sys.version_info[:2], 'full': sys.version.split()[0],"
    " 'exe': getattr(sys, '_base_executable', sys.executable), 'headers': os.path.exists(os.path.join(inc, 'Python.h')),"
    " 'venv': bool(u.find_spec('ensurepip')) and bool(u.find_spec('venv')),"
    " 't': bool(sysconfig.get_config_var('Py_GIL_DISABLED'))}))"
)


def _probe(exe: str, version: str, source: str) -> HostPython | None:
    try:
        proc = subprocess.run(
            [exe, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=_clean_env()
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:  # e.g. a pyenv shim for a version that is not selected
        return None
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    want_t = version.endswith("t")
    if info["v"] != version.removesuffix("t") or info["t"] != want_t:
        return None
    if not (info["headers"] and info["venv"]):
        return None
    return HostPython(version, Path(info["exe"]), info["full"], source)


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "_PYTHON_SYSCONFIGDATA_NAME", "_PYTHON_HOST_PLATFORM"):
        env.pop(key, None)
    return env


def _pyenv_root() -> Path:
    if env := os.environ.get("PYENV_ROOT"):
        return Path(env)
    return Path.home() / ".pyenv"


def _python_candidates(version: str) -> list[tuple[str, str]]:
    name = f"python{version}"
    out: list[tuple[str, str]] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        exe = Path(folder or ".") / name
        if exe.is_file() and os.access(exe, os.X_OK):
            out.append((str(exe), "PATH"))
    versions = _pyenv_root() / "versions"
    if versions.is_dir():

        def patch(p: Path) -> tuple[int, ...]:
            return tuple(int(x) for x in re.findall(r"\d+", p.name)[:3])

        base = version.removesuffix("t")
        dirs = [d for d in versions.iterdir() if re.fullmatch(rf"{re.escape(base)}\.\d+t?", d.name)]
        for d in sorted(dirs, key=patch, reverse=True):
            exe = d / "bin" / name
            if exe.exists():
                out.append((str(exe), "pyenv"))
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if os.access(uv, os.X_OK):
        try:
            proc = subprocess.run(
                [uv, "python", "find", "--no-python-downloads", version],
                capture_output=True,
                text=True,
                timeout=60,
                env=_clean_env(),
            )
            if proc.returncode == 0 and proc.stdout.strip():
                out.append((proc.stdout.strip(), "uv"))
        except (OSError, subprocess.TimeoutExpired):
            pass
    return out


@functools.cache
def find_host_python(version: str) -> HostPython:
    """The first usable host CPython `version` on PATH (python3.X), in pyenv, or known to uv."""
    tried: list[str] = []
    for exe, source in _python_candidates(version):
        if found := _probe(exe, version, source):
            return found
        tried.append(exe)
    where = f" (unusable: {', '.join(tried)}; they need Python.h and venv)" if tried else ""
    raise PythonNotFound(
        f"no host interpreter for Python {version}: looked for python{version} on PATH, in pyenv "
        f"({_pyenv_root() / 'versions'}) and with `uv python find`{where}; install one, e.g. "
        f"`pyenv install {version}` or `uv python install {version}`"
    )


def find_python(version: str) -> Path:
    """The executable of a host CPython `version` ("3.11"); PythonNotFound names the version."""
    return find_host_python(version).executable


# --------------------------------------------------------------------------------------------
# The aarch64 _sysconfigdata for a host interpreter

_HOST_VARS = (
    "import json, sys, sysconfig; "
    "name = sysconfig._get_sysconfigdata_name(); "
    "mod = __import__(name, fromlist=['build_time_vars']); "
    "print(json.dumps({'name': name, 'vars': mod.build_time_vars}, default=str))"
)


def sysconfigdata(python: Path, toolchain: CrossToolchain) -> tuple[str, Path]:
    """Write (once) the aarch64 `_sysconfigdata` module for `python`; return (module name, folder).

    Select it with `_PYTHON_SYSCONFIGDATA_NAME=<name>`, `_PYTHON_HOST_PLATFORM=linux-<arch>` and the
    folder on PYTHONPATH. The host's configure results are kept (the pyconfig.h of x86_64 and aarch64
    Linux agree on every size); the target's suffix, SOABI and compilers replace the host's.
    """
    proc = subprocess.run(
        [str(python), "-c", _HOST_VARS], capture_output=True, text=True, env=_clean_env()
    )
    if proc.returncode != 0:
        raise ToolchainError(f"{python}: cannot read its sysconfig data: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    host: dict = data["vars"]
    cross = toolchain.cross
    multiarch = cross.multiarch
    version = host.get("VERSION", "")  # "3.11"
    major_minor = version.replace(".", "")
    threaded = "t" if host.get("Py_GIL_DISABLED") else ""
    soabi = f"cpython-{major_minor}{threaded}-{multiarch}"
    if cross.libc == "musl" and tuple(int(x) for x in version.split(".")) < (3, 13):
        # CPython before 3.13 names musl builds' extensions ...-linux-gnu (gh-95855).
        soabi = f"cpython-{major_minor}{threaded}-{cross.arch}-linux-gnu"
    cc, cxx = str(toolchain.tool("cc")), str(toolchain.tool("c++"))
    opt = "-DNDEBUG -fwrapv -O2 -Wall"
    cflags = f"{host.get('BASECFLAGS', '')} {opt} -fno-sanitize=undefined".strip()
    new = dict(host)
    new.update(
        {
            "CC": cc,
            "CXX": cxx,
            "LDSHARED": f"{cc} -shared",
            "BLDSHARED": f"{cc} -shared",
            "LDCXXSHARED": f"{cxx} -shared",
            "AR": str(toolchain.tool("ar")),
            "ARFLAGS": "rcs",
            "OPT": opt,
            "CFLAGS": cflags,
            "PY_CFLAGS": cflags,
            "PY_CFLAGS_NODIST": "",
            "CONFIGURE_CFLAGS": "",
            "CONFIGURE_CPPFLAGS": "",
            "CONFIGURE_LDFLAGS": "",
            "CPPFLAGS": "",
            "LDFLAGS": "",
            "PY_LDFLAGS": "",
            "PY_LDFLAGS_NODIST": "",
            "LIBS": "",
            "SHLIBS": "",
            "CCSHARED": "-fPIC",
            "EXT_SUFFIX": f".{soabi}.so",
            "SOABI": soabi,
            "MULTIARCH": multiarch,
            "PLATFORM_TRIPLET": multiarch,
            "HOST_GNU_TYPE": f"{cross.arch}-unknown-linux-{cross.libc}",
            "MACHDEP": "linux",
            # Extensions need no libpython on Linux; 0 keeps setuptools from adding -L<host libdir>.
            "Py_ENABLE_SHARED": 0,
        }
    )
    name = f"_sysconfigdata__linux_{multiarch}"
    text = (
        f"# Generated by wheelfarm from {python} ({data['name']}) for {toolchain.triple}.\n"
        f"build_time_vars = {new!r}\n"
    )
    key = hashlib.sha256(f"{python.resolve()}\n{text}".encode()).hexdigest()[:12]
    folder = toolchain.root / "sysconfig" / f"cp{major_minor}{threaded}-{key}"
    path = folder / f"{name}.py"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return name, folder


_DIRS_PROBE = (
    "import json, sysconfig as s; v = s.get_config_var;"
    "print(json.dumps({'include': [s.get_paths()['include'], s.get_paths()['platinclude']],"
    " 'lib': [d for d in (v('LIBDIR'), v('LIBPL')) if d]}))"
)


@functools.cache
def python_host_dirs(python: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(include folders, library folders) of a host CPython: its headers may be used by a cross
    build (the x86_64 and aarch64 pyconfig.h agree on Linux), its libpython folder never."""
    proc = subprocess.run(
        [str(python), "-c", _DIRS_PROBE], capture_output=True, text=True, env=_clean_env()
    )
    if proc.returncode != 0:
        raise ToolchainError(f"{python}: cannot read its sysconfig paths: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    return tuple(data["include"]), tuple(data["lib"])


def cross_env(python: Path, target: str) -> dict[str, str]:
    """The environment that makes `python` (a host CPython) build extensions for `target`."""
    if target.startswith("macosx_"):  # one cross backend: the target picks Linux or macOS
        from builder.build.toolchain.macos import cross_env as macos_cross_env

        return macos_cross_env(python, target)
    tc = CrossToolchain(target)
    name, folder = sysconfigdata(python, tc)
    env = tc.env()
    env.update(
        {
            "_PYTHON_SYSCONFIGDATA_NAME": name,
            "_PYTHON_HOST_PLATFORM": f"linux-{tc.cross.arch}",
            "PYTHONPATH": str(folder),
        }
    )
    return env


# --------------------------------------------------------------------------------------------
# Test sysroots (Debian arm64 with the target CPython)


def test_suite(python: str) -> str | None:
    """The Debian suite whose arm64 archive has CPython `python`, or None (not testable)."""
    return TEST_SUITES.get(python)


def test_sysroot(python: str) -> Path | None:
    """A cached Debian arm64 folder with /usr/bin/python3.X, or None when Debian has no such Python.

    The sysroot holds the interpreter and its dependencies only: a wheel's grafted libraries are
    not in it, so a test that passes proves the wheel brings its own.
    """
    from builder.build.toolchain.debian import sysroot

    suite = test_suite(python)
    if suite is None:
        return None
    root = sysroot(suite, [f"python{python}"], "arm64")
    if not (root / "usr" / "bin" / f"python{python}").exists():
        raise ToolchainError(f"{root}: no usr/bin/python{python} after extracting Debian {suite}")
    return root


test_sysroot.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function


def cached_test_sysroot(python: str) -> Path | None:
    """The test sysroot if it is already in the cache (no download), else None."""
    import hashlib as _h

    suite = test_suite(python)
    if suite is None:
        return None
    key = _h.sha256(f"python{python}".encode()).hexdigest()[:12]
    root = cache_dir() / "sysroots" / f"{suite}-arm64-{key}"
    return root if (root / ".complete").exists() else None
