"""Host leaks in cross builds: every compile and link command a build ran, scanned for host paths.

The zig wrappers append each command (`cwd TAB argv`) to the file named by `WHEELFARM_CC_LOG`
(`builder.build.toolchain.host.COMMAND_LOG_VAR`). `scan_commands` reads it back and returns every
argument that names a host header or library folder, the host CPython's library folder, or a
host-only define/machine flag (the rules are data: `host_leaks.toml`). A build with a leak fails,
naming the command: its wheel would be right only by accident of the build machine.
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
class LeakRules:
    folders: tuple[str, ...]
    flags: tuple[re.Pattern[str], ...]


@functools.cache
def rules(path: Path = RULES_FILE) -> LeakRules:
    data = tomllib.loads(path.read_text())
    return LeakRules(
        tuple(str(f).rstrip("/") for f in data["folders"]),
        tuple(re.compile(p) for p in data["flags"]),
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
    """
    r = rules_ or rules()
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
        if any(p.search(a) for p in r.flags):
            found.append((a, "a host-only define or machine flag"))
    return found


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
        for arg, reason in scan_args(args, allowed=allowed, host_libdirs=host_libdirs):
            if (arg, reason) not in seen:  # one report per argument, the first command naming it
                seen.add((arg, reason))
                leaks.append(Leak(command, cwd, arg, reason))
    return leaks
