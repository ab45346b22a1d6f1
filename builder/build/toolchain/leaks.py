"""Host leaks in cross builds: every compile and link command a build ran, scanned for host paths.

The zig wrappers append each command (`cwd TAB argv`) to the file named by `WHEELFARM_CC_LOG`
(`builder.build.toolchain.host.COMMAND_LOG_VAR`); the wrappers of code generators that read C
headers (SWIG: `[programs]` in the rules) append theirs with the program's name first. `scan_commands`
reads it back and returns every argument that names a host header or library folder, the host
CPython's library folder, or a host-only define/machine flag (the rules are data: `host_leaks.toml`).
A build with a leak fails, naming the command: its wheel would be right only by accident of the build
machine.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

RULES_FILE = Path(__file__).with_name("host_leaks.toml")
# Flags whose value is a folder, as one argument (-I/usr/include) or two (-I /usr/include).
_PATH_FLAGS = ("-isystem", "-idirafter", "-iquote", "-I", "-L", "--sysroot=", "-B")


@dataclass(frozen=True)
class Leak:
    command: str  # the whole command as the wrapper saw it
    cwd: str
    argument: str  # the offending argument
    reason: str

    def __str__(self) -> str:
        cmd = self.command if len(self.command) <= 400 else self.command[:400] + " ..."
        return f"host leak: {self.argument} ({self.reason}) in `{cmd}` (in {self.cwd})"


@dataclass(frozen=True)
class Program:
    """A code generator whose wrapper logs its commands (`[programs.<name>]` in the rules)."""

    name: str
    names: tuple[str, ...]  # the executables wrapped (swig, swig4.0, ...)
    reason: str  # why a host folder or flag matters to it
    flags: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class LeakRules:
    folders: tuple[str, ...]
    flags: tuple[re.Pattern[str], ...]
    programs: tuple[Program, ...] = ()

    def program(self, executable: str) -> Program | None:
        return next((p for p in self.programs if executable in p.names), None)


@functools.cache
def rules(path: Path = RULES_FILE) -> LeakRules:
    data = tomllib.loads(path.read_text())
    programs = tuple(
        Program(
            name,
            tuple(p["names"]),
            str(p.get("reason", "")),
            tuple(re.compile(f) for f in p.get("flags", ())),
        )
        for name, p in data.get("programs", {}).items()
    )
    return LeakRules(
        tuple(str(f).rstrip("/") for f in data["folders"]),
        tuple(re.compile(p) for p in data["flags"]),
        programs,
    )


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _paths_of(args: Sequence[str]) -> Iterable[tuple[str, str]]:
    """(argument, absolute path) for every argument that names a path."""
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a.startswith("-Wl,"):
            for part in a[4:].split(","):
                if part.startswith("/"):
                    yield a, part
                elif part.startswith("-L/"):
                    yield a, part[2:]
            continue
        for flag in _PATH_FLAGS:
            if a == flag and i < len(args):
                yield f"{a} {args[i]}", args[i]
                i += 1
                break
            if a.startswith(flag) and len(a) > len(flag):
                value = a[len(flag) :]
                if value.startswith("/"):
                    yield a, value
                break
        else:
            if a.startswith("/"):
                yield a, a


def scan_args(
    args: Sequence[str],
    *,
    allowed: Sequence[os.PathLike[str] | str] = (),
    host_libdirs: Sequence[os.PathLike[str] | str] = (),
    rules_: LeakRules | None = None,
) -> list[tuple[str, str]]:
    """(argument, reason) for each leak in one command's arguments.

    `allowed`: folders that may appear even under a host folder (the host CPython's headers).
    `host_libdirs`: more host folders that must not appear (the host CPython's LIBDIR).
    A command of a logged code generator (`swig ...`: its name first) gets that program's own flag
    rules too, and its reason in each finding.
    """
    r = rules_ or rules()
    program = r.program(os.path.basename(args[0])) if args else None
    if program is not None:
        args = args[1:]
    found = _scan(args, r, program.flags if program else (), allowed, host_libdirs)
    if program is not None and program.reason:
        found = [(arg, f"{reason}; {program.reason}") for arg, reason in found]
    return found


def _scan(
    args: Sequence[str],
    r: LeakRules,
    more_flags: Sequence[re.Pattern[str]],
    allowed: Sequence[os.PathLike[str] | str],
    host_libdirs: Sequence[os.PathLike[str] | str],
) -> list[tuple[str, str]]:
    ok = [os.path.normpath(str(a)) for a in allowed]
    extra = [os.path.normpath(str(h)) for h in host_libdirs]
    found: list[tuple[str, str]] = []
    for arg, path in _paths_of(args):
        norm = os.path.normpath(path)
        if any(_under(norm, a) for a in ok):
            continue
        if folder := next((f for f in extra if _under(norm, f)), None):
            found.append((arg, f"the host Python's library folder {folder}"))
        elif folder := next((f for f in r.folders if _under(norm, f)), None):
            found.append((arg, f"a host folder under {folder}"))
    for a in args:
        if any(p.search(a) for p in (*r.flags, *more_flags)):
            found.append((a, "a host-only define or machine flag"))
    return found


# A build system's feature probe: configure's conftest, CMake's try_compile, meson's sanity checks.
# A probe tries flags and folders to see whether they work; what it keeps reaches the real compile
# commands, which are scanned. (PostgreSQL's configure tries -msse4.2, which the target refuses.)
_PROBE = re.compile(
    r"(^|/)conftest(\.\w+)?$|(^|/)cmTC_\w+|CMakeScratch|meson-private/|sanitycheck\w*\."
)


def is_probe(args: Sequence[str], cwd: str = "") -> bool:
    """Whether a logged command is a build system's probe rather than part of the build."""
    return any(_PROBE.search(a) for a in args) or "CMakeScratch" in cwd or "/CMakeTmp" in cwd


def scan_commands(
    log: Path,
    *,
    allowed: Sequence[os.PathLike[str] | str] = (),
    host_libdirs: Sequence[os.PathLike[str] | str] = (),
) -> list[Leak]:
    """Every leak in the wrapper's command log `log` (missing file: no commands, no leaks)."""
    if not log.exists():
        return []
    leaks: list[Leak] = []
    seen: set[tuple[str, str]] = set()
    for line in log.read_text(errors="replace").splitlines():
        cwd, _, command = line.partition("\t")
        try:
            args = shlex.split(command)
        except ValueError:
            args = command.split()
        if is_probe(args, cwd):
            continue
        for arg, reason in scan_args(args, allowed=allowed, host_libdirs=host_libdirs):
            if (arg, reason) not in seen:  # one report per argument, the first command naming it
                seen.add((arg, reason))
                leaks.append(Leak(command, cwd, arg, reason))
    return leaks
