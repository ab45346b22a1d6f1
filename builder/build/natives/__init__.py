"""Native C libraries built for a wheel's target, each into a prefix of its own that later builds reuse.

A recipe's `[[native]]` entries name libraries the sdist links against. Each one is built with the same
cross toolchain as the wheel (zig's cc for the target's glibc floor) into
`cache_dir()/"prefix"/<target>/<name>-<key>`, where the key hashes the recipe entry and the toolchain.
A prefix appears whole or not at all: the library is configured for its final prefix, installed with
DESTDIR into a staging folder and renamed into place, so the paths baked into .pc and CMake files are
right. A second build with the same entry and toolchain reuses it without running anything.

Build systems are one module each in this folder (autotools, configure, cmake, make, meson, openssl,
mklove, debian_binary), registered in `registry.BUILD_SYSTEMS`; the recipe schema's `build-system` enum lists
the same names. Every compile and link command a library build runs is scanned for host paths
(builder.build.toolchain.leaks): a leak fails the build, naming the command.

`prepare_natives` returns the prefixes and the environment the wheel build needs: CPPFLAGS/LDFLAGS,
PKG_CONFIG_PATH, CMAKE_PREFIX_PATH, a CMake toolchain file, and LD_LIBRARY_PATH for auditwheel.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from builder.build.natives.autotools import GLIBC_SITE
from builder.build.natives.base import (
    DEBIAN_ARCHES,
    DEFAULT_SUITE,
    GNU_TRIPLES,
    BuildContext,
    NativeBuildError,
    NativeSpec,
    Runner,
    Say,
    Toolchain,
    is_macos,
)
from builder.build.natives.registry import BUILD_SYSTEMS
from builder.build.toolchain.host import COMMAND_LOG_VAR, LAST_FLAGS_VAR
from builder.build.toolchain.leaks import scan_commands
from builder.check.elfdyn import ElfFacts, ElfReadError, read_elf
from builder.common.atomic import file_lock
from builder.common.buildlog import BuildError, BuildLog
from builder.common.fetch import FetchError, fetch_verified, sha256_file
from builder.common.paths import cache_dir
from builder.common.sdist import SdistError, unpack

MARKER = ".wheelfarm-native.json"
# Variables that hold search paths: the prefixes' entries go first, the caller's stay after them.
PATH_VARS = ("PKG_CONFIG_PATH", "LD_LIBRARY_PATH", "CMAKE_PREFIX_PATH", "LIBRARY_PATH")
FLAG_VARS = ("CPPFLAGS", "LDFLAGS")


def spec_of(lib: Any, base: Path | None = None) -> NativeSpec:
    """A NativeSpec from a recipe's NativeLib (attributes) or a `[[native]]` table (a mapping)."""
    if isinstance(lib, NativeSpec):
        return lib

    def get(key: str, default: Any = None) -> Any:
        for k in (key, key.replace("_", "-")):
            if isinstance(lib, Mapping) and k in lib:
                return lib[k]
            if hasattr(lib, k.replace("-", "_")):
                return getattr(lib, k.replace("-", "_"))
        return default

    spec = NativeSpec(
        name=str(get("name", "")),
        source=str(get("source", "")),
        build_system=str(get("build_system", "")),
        sha256=str(get("sha256") or ""),
        args=tuple(str(a) for a in (get("args") or ())),
        base=base,
    )
    if not spec.name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", spec.name):
        raise NativeBuildError(f"native library has no usable name: {spec.name!r}")
    if spec.build_system not in BUILD_SYSTEMS:
        raise NativeBuildError(
            f"native library {spec.name}: build-system {spec.build_system!r} is not one of "
            + ", ".join(BUILD_SYSTEMS)
        )
    if not spec.source:
        raise NativeBuildError(f"native library {spec.name}: no source")
    return spec


@dataclass(frozen=True)
class NativePrefix:
    """One library installed for one target."""

    name: str
    path: Path
    log: Path
    built: bool  # False when an earlier build was reused
    seconds: float  # how long the build took (when it was built, not when it was reused)
    include_dirs: tuple[Path, ...]
    lib_dirs: tuple[Path, ...]
    glibc: tuple[int, int] | None  # highest GLIBC_x.y its binaries need
    warnings: tuple[str, ...] = ()

    @property
    def pkgconfig_dirs(self) -> tuple[Path, ...]:
        dirs = [d / "pkgconfig" for d in self.lib_dirs] + [self.path / "share" / "pkgconfig"]
        return tuple(d for d in dirs if d.is_dir())


@dataclass(frozen=True)
class NativeDeps:
    """All the native libraries of one build, and what the wheel build needs to find them."""

    prefixes: tuple[NativePrefix, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def library_path(self) -> list[Path]:
        """Folders auditwheel must search (its LD_LIBRARY_PATH) to graft these libraries."""
        return [d for p in self.prefixes for d in p.lib_dirs]


# --- targets and toolchains ---------------------------------------------------------------------


def target_glibc(target: str) -> tuple[int, int]:
    """The glibc floor of a manylinux platform tag (legacy aliases included)."""
    legacy = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
    for alias, floor in legacy.items():
        if target.startswith(alias + "_"):
            return floor
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", target)
    if not m:
        raise NativeBuildError(f"{target} is not a manylinux platform tag")
    return int(m.group(1)), int(m.group(2))


def target_arch(target: str) -> str:
    """The tag's architecture: aarch64, x86_64 ... for Linux; arm64 or x86_64 for macOS."""
    for arch in ("aarch64", "x86_64", "armv7l", "ppc64le", "s390x", "i686", "arm64"):
        if target.endswith("_" + arch):
            return arch
    raise NativeBuildError(f"{target}: unknown architecture")


ELF_MACHINES = {"aarch64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64


def toolchain_key(toolchain: Toolchain) -> str:
    """What identifies the toolchain's output: its compilers, flags and zig's version."""
    env = toolchain.env()
    keys = ("CC", "CXX", "AR", "RANLIB", "CFLAGS", "CXXFLAGS", "LDFLAGS", "CPPFLAGS")
    parts = [f"{k}={env.get(k, '')}" for k in keys] + [
        f"legacy={' '.join(LEGACY_C_WARNINGS + LAST_C_FLAGS)}"
    ]
    for attr in ("triple", "target", "version"):
        parts.append(f"{attr}={getattr(toolchain, attr, '')}")
    # configure's cross answers (autotools.GLIBC_SITE) decide what a library is built with
    parts.append("config.site=" + hashlib.sha256(GLIBC_SITE.read_bytes()).hexdigest())
    with contextlib.suppress(metadata.PackageNotFoundError):
        parts.append("ziglang=" + metadata.version("ziglang"))
    return "\n".join(parts)


def _source_identity(spec: NativeSpec) -> str:
    """The source as it enters the key: a local folder by its content, anything else by name/hash."""
    local = _local_source(spec)
    if local is None:
        return f"{spec.source} {spec.sha256}"
    h = hashlib.sha256()
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(local) if p != local else p.name).encode() + b"\0")
        h.update(p.read_bytes())
    return f"local {h.hexdigest()}"


def prefix_key(spec: NativeSpec, toolchain: Toolchain, roots: Sequence[Path] = ()) -> str:
    """The prefix's identity: the entry, the toolchain and the earlier prefixes it was built against
    (their folder names hold their own keys, so a rebuilt OpenSSL means a rebuilt curl after it)."""
    fields: dict[str, Any] = {
        "name": spec.name,
        "source": _source_identity(spec),
        "build-system": spec.build_system,
        "args": list(spec.args),
    }
    if roots:
        fields["built-against"] = [Path(r).name for r in roots]
    entry = json.dumps(fields, sort_keys=True)
    return hashlib.sha256((entry + "\n" + toolchain_key(toolchain)).encode()).hexdigest()[:16]


def prefix_root(target: str) -> Path:
    return cache_dir() / "prefix" / target


# --- ELF inspection ------------------------------------------------------------------------------


def elf_files(root: Path) -> Iterator[Path]:
    """Regular ELF files under `root` (shared libraries, executables, objects; not archives)."""
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    yield p


def _elf(path: Path) -> ElfFacts | None:
    """The file's ELF facts through the checker's reader (None: tables that do not hold together)."""
    try:
        with open(path, "rb") as fh:
            return read_elf(fh)
    except ElfReadError:
        return None


def glibc_floor(paths: Iterable[Path]) -> tuple[int, int] | None:
    """The highest GLIBC_x.y version any of these ELF files needs."""
    versions = set().union(*(f.glibc_versions() for p in paths if (f := _elf(p))))
    return max(versions) if versions else None


# --- sources -------------------------------------------------------------------------------------


def _local_source(spec: NativeSpec) -> Path | None:
    src = spec.source
    if src.startswith("file:"):
        src = src.removeprefix("file://").removeprefix("file:")
    elif re.match(r"^[a-z][a-z0-9+.-]*:", src):  # debian:, https:, ...
        return None
    path = Path(src).expanduser()
    if not path.is_absolute():
        path = (spec.base or Path.cwd()) / path
    return path


def _unpack(archive: Path, dest: Path) -> Path:
    try:
        return unpack(archive, dest)
    except SdistError as e:
        raise NativeBuildError(str(e)) from None


def fetch_source(spec: NativeSpec, dest: Path, say: Say) -> Path:
    """The library's source tree, unpacked (or copied) under `dest` (a fresh folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    if spec.source.startswith("debian:"):
        from builder.build.toolchain.debian import DebianError, PrivateApt

        package, _, suite = spec.source.removeprefix("debian:").partition("@")
        say(f"apt-get source {package}")
        try:
            return PrivateApt(suite or DEFAULT_SUITE).source(package, dest)
        except DebianError as e:
            raise NativeBuildError(f"native library {spec.name}: {e}") from e
    if re.match(r"^https?://", spec.source):
        if not spec.sha256:
            raise NativeBuildError(f"{spec.source}: a URL source needs its sha256 (64 hex digits)")
        say(f"fetching {spec.source}")
        try:
            archive = fetch_verified(spec.source, spec.sha256, cache="sources")
        except FetchError as e:
            raise NativeBuildError(str(e)) from None
        return _unpack(archive, dest / "src")
    local = _local_source(spec)
    assert local is not None
    if local.is_dir():
        return Path(shutil.copytree(local, dest / local.name, symlinks=True))
    if local.is_file():
        if spec.sha256 and sha256_file(local) != spec.sha256:
            raise NativeBuildError(f"{local}: sha256 does not match the recipe")
        return _unpack(local, dest / "src")
    raise NativeBuildError(f"native library {spec.name}: source {spec.source} does not exist")


__all__ = [
    "BUILD_SYSTEMS",
    "DEBIAN_ARCHES",
    "GNU_TRIPLES",
    "NativeBuildError",
    "NativeDeps",
    "NativePrefix",
    "NativeSpec",
    "build_native",
    "prepare_natives",
]

# --- building ------------------------------------------------------------------------------------


def ensure_host_tools(spec: NativeSpec, say: Say) -> None:
    """Install the host packages `spec`'s build system runs (and dpkg-dev for `apt-get source`)."""
    from builder.build.toolchain.host import ToolchainError, ensure_host_packages

    system = BUILD_SYSTEMS[spec.build_system]
    packages = list(system.host_packages)
    if spec.source.startswith("debian:") and system.needs_source:
        packages.append("dpkg-dev")
    try:
        ensure_host_packages(packages, say)
    except ToolchainError as e:
        raise NativeBuildError(f"native library {spec.name}: {e}") from e


def cmake_toolchain_file(
    toolchain: Toolchain, path: Path, *, arch: str = "aarch64", roots: Sequence[Path] = ()
) -> Path:
    """Write a CMake toolchain file for the cross compiler; libraries are searched in `roots` only."""
    env = toolchain.env()

    def tool(name: str) -> str:
        return shlex.split(env[name])[0] if env.get(name) else ""

    macos = env.get("MACOSX_DEPLOYMENT_TARGET")  # only the macOS toolchain sets it
    lines = [
        "# Generated by wheelfarm (builder.build.natives): cross-compile with zig's cc.",
        f"set(CMAKE_SYSTEM_NAME {'Darwin' if macos else 'Linux'})",
        f"set(CMAKE_SYSTEM_PROCESSOR {arch})",
        f'set(CMAKE_C_COMPILER "{tool("CC")}")',
        f'set(CMAKE_CXX_COMPILER "{tool("CXX")}")',
    ]
    if macos:
        # Absolute install names (not @rpath/...): delocate finds the dylibs by them and grafts
        # them; the wheel's copies get @loader_path names.
        lines += [
            f'set(CMAKE_OSX_DEPLOYMENT_TARGET "{macos}" CACHE STRING "")',
            f'set(CMAKE_OSX_ARCHITECTURES "{arch}" CACHE STRING "")',
            "set(CMAKE_MACOSX_RPATH OFF)",
            'set(CMAKE_INSTALL_NAME_DIR "${CMAKE_INSTALL_PREFIX}/lib")',
        ]
    for var, key in (("CMAKE_AR", "AR"), ("CMAKE_RANLIB", "RANLIB"), ("CMAKE_STRIP", "STRIP")):
        if tool(key):
            lines.append(f'set({var} "{tool(key)}" CACHE FILEPATH "")')
    # The prefixes are the only place to look for target libraries and headers; programs run on
    # the host. A root that matches nothing keeps host libraries out when there are no prefixes.
    search = [str(r) for r in roots] or [str(path.parent / "no-target-root")]
    lines += [
        "set(CMAKE_FIND_ROOT_PATH " + " ".join(f'"{s}"' for s in search) + ")",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


# C that the compilers these libraries were written for (gcc <= 13) warned about and clang 16+
# refuses: configure checks written that way (OpenLDAP's pthread_detach(&thread)) fail and switch
# features off, or stop configure. Warnings again, as gcc 13 had them; C only.
LEGACY_C_WARNINGS = (
    "-Wno-error=int-conversion",
    "-Wno-error=incompatible-pointer-types",
    "-Wno-error=incompatible-function-pointer-types",
    "-Wno-error=implicit-function-declaration",
    "-Wno-error=implicit-int",
)


# gcc does not count a pointer that loses a qualifier (`char *p = strchr(const_s, ':')`) as an
# incompatible pointer type; clang does, so a library's own -Werror=incompatible-pointer-types (krb5)
# fails code gcc builds. After the library's flags (the wrappers append it), as gcc has it.
LAST_C_FLAGS = ("-Wno-error=incompatible-pointer-types-discards-qualifiers",)


def _build_env(toolchain: Toolchain, deps_env: Mapping[str, str]) -> dict[str, str]:
    env = {**os.environ, **toolchain.env()}
    env = merge_env(env, deps_env)
    env.setdefault("CFLAGS", "-O2 -fno-sanitize=undefined")
    env.setdefault("CXXFLAGS", env["CFLAGS"])
    env["CFLAGS"] = " ".join([env["CFLAGS"], *LEGACY_C_WARNINGS])
    env[LAST_FLAGS_VAR] = " ".join(LAST_C_FLAGS)
    env.setdefault("SOURCE_DATE_EPOCH", "1")
    env.pop("DESTDIR", None)
    return env


def _layout(prefix: Path, arch: str) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """Include and library folders of a prefix (a make-install tree or a Debian /usr tree)."""
    triple = GNU_TRIPLES.get(arch, "none")  # Debian's multiarch folders (Linux only)
    inc = [prefix / "include", prefix / "usr/include", prefix / "usr/include" / triple]
    lib = [prefix / "lib", prefix / "lib64", prefix / "usr/lib" / triple, prefix / "usr/lib"]
    return (
        tuple(d for d in inc if d.is_dir() and not d.is_symlink()),
        tuple(d for d in lib if d.is_dir() and not d.is_symlink()),
    )


def _prefix_of(spec: NativeSpec, path: Path, log: Path, arch: str, built: bool) -> NativePrefix:
    info = json.loads((path / MARKER).read_text())
    include_dirs, lib_dirs = _layout(path, arch)
    glibc = tuple(info["glibc"]) if info.get("glibc") else None
    return NativePrefix(
        name=spec.name,
        path=path,
        log=log,
        built=built,
        seconds=float(info.get("seconds") or 0.0),
        include_dirs=include_dirs,
        lib_dirs=lib_dirs,
        glibc=glibc,  # type: ignore[arg-type]
        warnings=tuple(info.get("warnings", ())),
    )


def build_native(
    lib: Any,
    toolchain: Toolchain | None,
    target: str,
    *,
    deps_env: Mapping[str, str] | None = None,
    roots: Sequence[Path] = (),
    base: Path | None = None,
    say: Say | None = None,
) -> NativePrefix:
    """Build (or reuse) one native library for `target`; `deps_env`/`roots` are earlier libraries'."""
    spec = spec_of(lib, base)
    say = say or (lambda _msg: None)
    toolchain = toolchain or _toolchain(target)
    arch = target_arch(target)
    floor = None if is_macos(target) else target_glibc(target)
    root = prefix_root(target)
    key = prefix_key(spec, toolchain, roots)
    final = root / f"{spec.name}-{key}"
    log = root / f"{spec.name}-{key}.log"
    if (final / MARKER).exists():
        say(f"{spec.name}: reusing {final}")
        return _prefix_of(spec, final, log, arch, built=False)

    with file_lock(root / f".{spec.name}-{key}.lock"):
        if (final / MARKER).exists():  # another process built it while we waited
            return _prefix_of(spec, final, log, arch, built=False)
        if final.exists():  # a half-made prefix without its marker is never used: start again
            shutil.rmtree(final)
        work = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}-{key}.build."))
        started = time.monotonic()
        log.write_text(
            f"# wheelfarm native library {spec.name} for {target}\n"
            f"# source={spec.source} build-system={spec.build_system} args={list(spec.args)}\n"
            f"# prefix={final}\n# toolchain:\n"
            + "".join(f"#   {line}\n" for line in toolchain_key(toolchain).splitlines())
        )
        build_log = BuildLog(log)
        env = _build_env(toolchain, deps_env or {})
        env[COMMAND_LOG_VAR] = str(work / "cc-commands.log")  # scanned for host leaks afterwards
        run = Runner(build_log, env, say)
        try:
            stage = work / "stage"
            staged = stage / final.relative_to(final.anchor)
            say(f"{spec.name}: building for {target} ({spec.build_system}); log {log}")
            ensure_host_tools(spec, say)
            if spec.build_system == "debian-binary" and is_macos(target):
                raise NativeBuildError(
                    f"native library {spec.name}: debian-binary gives Linux libraries; for "
                    f"{target} build it from source (autotools, cmake, make, openssl, mklove)"
                )
            system = BUILD_SYSTEMS[spec.build_system]
            src = fetch_source(spec, work / "src", say) if system.needs_source else None
            tc_file = cmake_toolchain_file(
                toolchain, work / "toolchain.cmake", arch=arch, roots=roots
            )
            system.build(
                BuildContext(
                    spec=spec,
                    src=src,
                    final=final,
                    stage=stage,
                    run=run,
                    toolchain=toolchain,
                    arch=arch,
                    toolchain_file=tc_file,
                    roots=tuple(roots),
                    work=work,
                    target=target,
                )
            )
            leaks = scan_commands(work / "cc-commands.log")
            if leaks:
                for leak in leaks:
                    run.note(f"  {leak}")
                raise NativeBuildError(
                    f"native library {spec.name}: {leaks[0]}; full log: {log}",
                    log=log,
                    first_error=str(leaks[0]),
                )
            if final.exists():
                raise NativeBuildError(
                    f"native library {spec.name}: the install step wrote into {final} directly "
                    f"(it ignored DESTDIR); full log: {log}",
                    log=log,
                )
            if not staged.is_dir():
                raise NativeBuildError(
                    f"native library {spec.name}: the install step put nothing in {final}; "
                    f"full log: {log}",
                    log=log,
                )
            if floor is not None and spec.build_system != "debian-binary":
                # a config program built for the target (pg_config) cannot run here: a stand-in
                # answering from the .pc files takes its place (debian-binary does its own)
                from builder.build.natives.debian_binary import config_tools

                for name in config_tools(staged, final, None):
                    run.note(f"  bin/{name} is an aarch64 program: a stand-in answers for it")
            if floor is None:
                warnings = _check_macho_binaries(spec, staged, arch, run)
            else:
                warnings = _check_binaries(spec, staged, arch, floor, run)
            _include_dirs, lib_dirs = _layout(staged, arch)
            info = {
                "name": spec.name,
                "target": target,
                "key": key,
                "source": spec.source,
                "build-system": spec.build_system,
                "seconds": round(time.monotonic() - started, 2),
                "glibc": glibc_floor(p for d in lib_dirs for p in elf_files(d)),
                "warnings": warnings,
            }
            (staged / MARKER).write_text(json.dumps(info, indent=2) + "\n")
            os.replace(staged, final)
            run.note(f"\n# done in {info['seconds']} s")
        except NativeBuildError:
            raise
        except Exception as e:
            run.note(f"\nerror: {e}")
            raise NativeBuildError(
                f"native library {spec.name}: {e}; full log: {log}", log=log
            ) from e
        finally:
            build_log.close()
            shutil.rmtree(work, ignore_errors=True)
    for w in warnings:
        say(f"warning: {w}")
    return _prefix_of(spec, final, log, arch, built=True)


def _check_macho_binaries(spec: NativeSpec, staged: Path, arch: str, run: Runner) -> list[str]:
    """Every Mach-O in the prefix is for the target architecture; no host ELF file slipped in."""
    from builder.check.binaries import identify

    for path in sorted(p for p in staged.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()[: 1 << 16]
        if data[:4] == b"\x7fELF":
            raise NativeBuildError(
                f"native library {spec.name}: {path.relative_to(staged)} is an ELF file, not a "
                "Mach-O (the build used a host compiler?)",
                log=run.log.path,
            )
        binary = identify(path.name, lambda o, n, d=data: d[o : o + n])
        if binary is not None and binary.format == "Mach-O" and binary.archs != {arch}:
            raise NativeBuildError(
                f"native library {spec.name}: {path.relative_to(staged)} is "
                f"{', '.join(sorted(binary.archs))}, not {arch}",
                log=run.log.path,
            )
    return []


def _check_binaries(
    spec: NativeSpec, staged: Path, arch: str, floor: tuple[int, int], run: Runner
) -> list[str]:
    """Every binary is for the target; glibc symbol versions above the target's floor are named."""
    warnings: list[str] = []
    want = ELF_MACHINES[arch]
    names = {number: name for name, number in ELF_MACHINES.items()}
    for path in elf_files(staged):
        facts = _elf(path)
        if facts is None:
            continue
        if facts.machine != want:
            found = names.get(facts.machine, f"e_machine {facts.machine}")
            raise NativeBuildError(
                f"native library {spec.name}: {path.relative_to(staged)} is {found}, not {arch} "
                "(the build used a host compiler?)",
                log=run.log,
            )
        above = facts.symbols_above(floor)
        if above:
            need = max(facts.glibc_versions())
            warnings.append(
                f"{spec.name}: {path.name} needs glibc {need[0]}.{need[1]} (above the target's "
                f"{floor[0]}.{floor[1]}): {', '.join(above[:8])}"
                + (" ..." if len(above) > 8 else "")
                + "; the wheel will only reach manylinux_"
                + f"{need[0]}_{need[1]}"
            )
    for w in warnings:
        run.note(f"warning: {w}")
    return warnings


# --- all libraries of a recipe --------------------------------------------------------------------


def merge_env(base: Mapping[str, str], additions: Mapping[str, str]) -> dict[str, str]:
    """`base` with `additions`: search paths put first, flags appended, anything else replaced."""
    env = dict(base)
    for k, v in additions.items():
        if k in PATH_VARS and env.get(k):
            env[k] = f"{v}:{env[k]}"
        elif k in FLAG_VARS and env.get(k):
            env[k] = f"{env[k]} {v}"
        else:
            env[k] = v
    return env


def env_for(prefixes: Sequence[NativePrefix], toolchain_file: Path | None = None) -> dict[str, str]:
    """The environment additions a wheel build needs to compile, link and repair against `prefixes`."""
    if not prefixes:
        return {}
    inc = [d for p in prefixes for d in p.include_dirs]
    lib = [d for p in prefixes for d in p.lib_dirs]
    pc = [d for p in prefixes for d in p.pkgconfig_dirs]
    env = {
        "CPPFLAGS": " ".join(f"-I{d}" for d in inc),
        # rpath-link: a library that needs another of the prefixes links without it on -L.
        "LDFLAGS": " ".join([f"-L{d}" for d in lib] + [f"-Wl,-rpath-link,{d}" for d in lib]),
        "LIBRARY_PATH": ":".join(map(str, lib)),
        "LD_LIBRARY_PATH": ":".join(map(str, lib)),
        "CMAKE_PREFIX_PATH": ":".join(str(p.path) for p in prefixes),
    }
    if pc:
        env["PKG_CONFIG_PATH"] = ":".join(map(str, pc))
    if toolchain_file is not None:
        env["CMAKE_TOOLCHAIN_FILE"] = str(toolchain_file)
    for p in prefixes:  # <NAME>_ROOT_DIR: what Find<Name>.cmake modules (OpenSSL...) honour
        var = re.sub(r"[^A-Z0-9]", "_", p.name.upper())
        env[f"{var}_ROOT_DIR"] = str(p.path)
        env[f"{var}_ROOT"] = str(p.path)
    return env


def prepare_natives(
    libs: Iterable[Any],
    toolchain: Toolchain | None,
    target: str,
    *,
    base: Path | None = None,
    say: Say | None = None,
) -> NativeDeps:
    """Build or reuse every library in order (later ones see the earlier prefixes) for `target`."""
    prefixes: list[NativePrefix] = []
    arch = target_arch(target)
    toolchain = toolchain or _toolchain(target)
    for lib in libs:
        roots = [p.path for p in prefixes]
        prefixes.append(
            build_native(
                lib,
                toolchain,
                target,
                deps_env=env_for(prefixes),
                roots=roots,
                base=base,
                say=say,
            )
        )
    if not prefixes:
        return NativeDeps()
    key = hashlib.sha256("\n".join(str(p.path) for p in prefixes).encode()).hexdigest()[:16]
    tc_file = cmake_toolchain_file(
        toolchain,
        prefix_root(target) / f"toolchain-{key}.cmake",
        arch=arch,
        roots=[p.path for p in prefixes],
    )
    return NativeDeps(
        prefixes=tuple(prefixes),
        env=env_for(prefixes, tc_file),
        warnings=tuple(w for p in prefixes for w in p.warnings),
    )


def _toolchain(target: str) -> Toolchain:
    from builder.build.toolchain.host import toolchain_for

    return toolchain_for(target)


# --- the build pipeline's entry points (builder.build.pipeline) ---------------------------------------------


def prefixes_for(recipe: Any, target: str, log: Any = None) -> list[Path]:
    """The prefixes of `recipe.native` built (or reused) for `target`, in order.

    Progress goes to `log` (a BuildLog); a failure is a BuildError("deps", first error line, log).
    """

    def say(msg: str) -> None:
        if log is not None:
            log.write(f"  deps: {msg}")

    base = Path(recipe.path).parent if getattr(recipe, "path", None) else None
    try:
        deps = prepare_natives(recipe.native, None, target, base=base, say=say)
    except NativeBuildError as e:
        if log is not None and e.log is not None:
            log.write(f"  deps: full log of the failed library build: {e.log}")
        raise BuildError("deps", e.first_error or str(e), e.log) from e
    for w in deps.warnings:
        say(f"warning: {w}")
    return [p.path for p in deps.prefixes]


def prefix_extra_env(prefixes: Sequence[Path], target: str) -> dict[str, str]:
    """What a build needs beyond -I/-L/PKG_CONFIG_PATH to use `prefixes`: a CMake toolchain file
    that searches them (for setup.py scripts that run cmake), CMAKE_PREFIX_PATH, <NAME>_ROOT_DIR."""
    if not prefixes:
        return {}
    key = hashlib.sha256("\n".join(str(p) for p in prefixes).encode()).hexdigest()[:16]
    tc_file = cmake_toolchain_file(
        _toolchain(target),
        prefix_root(target) / f"toolchain-{key}.cmake",
        arch=target_arch(target),
        roots=list(prefixes),
    )
    env = {"CMAKE_TOOLCHAIN_FILE": str(tc_file), "CMAKE_PREFIX_PATH": ":".join(map(str, prefixes))}
    for p in prefixes:
        marker = p / MARKER
        name = json.loads(marker.read_text())["name"] if marker.exists() else p.name
        var = re.sub(r"[^A-Z0-9]", "_", name.upper())
        env[f"{var}_ROOT_DIR"] = str(p)
        env[f"{var}_ROOT"] = str(p)
    return env
