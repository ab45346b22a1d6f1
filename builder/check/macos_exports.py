"""The symbols a Mac provides to an extension module at load time, from real files available here.

- libSystem: zig's `lib/libc/darwin/libSystem.tbd` (from the `ziglang` package): Apple's text stub of
  /usr/lib/libSystem.B.dylib and the /usr/lib/system/*.dylib it re-exports, with each export list
  scoped to its targets (`arm64e-macos` stands for arm64, as Apple's linker reads it).
- CPython: the dynamic symbol table of the host's `libpython3.X.so` of the same X (a pyenv or Debian
  build, found on PATH or in pyenv as the cross backend finds them), names given the Mach-O leading underscore. The C API a macOS build
  exports is the same code: the platform-specific exports (Windows' `PyErr_SetFromWindowsErr`...)
  are not in either, so a symbol this list lacks is one a Mac's Python lacks too. Where no host
  CPython of the version exists, the check says so (a warning) instead of guessing.
- A dylib inside the wheel: its own defined external symbols (macho.MachO.exports).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from importlib import util
from pathlib import Path

_TBD_LIST = re.compile(
    r"^\s*-?\s*(targets|symbols|weak-symbols|thread-local-symbols|objc-classes|objc-eh-types|"
    r"objc-ivars):\s*\[(.*?)\]",
    re.S | re.M,
)
LIBSYSTEM = "/usr/lib/libSystem.B.dylib"


class ExportsUnavailable(LookupError):
    """No real export list can be had here; the message says what is missing."""


def libsystem_tbd() -> Path:
    spec = util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        raise ExportsUnavailable("the ziglang package (zig's libSystem.tbd) is not installed")
    path = Path(spec.origin).parent / "lib" / "libc" / "darwin" / "libSystem.tbd"
    if not path.exists():
        raise ExportsUnavailable(f"{path} is missing from the ziglang package")
    return path


def tbd_exports(text: str, arch: str) -> frozenset[str]:
    """Exported names of a TAPI .tbd (v4) for `arch`-macos, every document of the file together."""
    wanted = {f"{arch}-macos", "arm64e-macos"} if arch.startswith("arm64") else {f"{arch}-macos"}
    names: set[str] = set()
    targets: set[str] = set()
    for key, body in _TBD_LIST.findall(text):
        items = [i.strip().strip("'\"") for i in body.split(",") if i.strip()]
        if key == "targets":
            targets = set(items)
            continue
        if not targets & wanted:
            continue
        if key == "objc-classes":
            for cls in items:
                names |= {f"_OBJC_CLASS_$_{cls}", f"_OBJC_METACLASS_$_{cls}"}
        elif key == "objc-eh-types":
            names |= {f"_OBJC_EHTYPE_$_{cls}" for cls in items}
        elif key == "objc-ivars":
            names |= {f"_OBJC_IVAR_$_{ivar}" for ivar in items}
        else:
            names.update(items)
    return frozenset(names)


@functools.cache
def libsystem_exports(arch: str) -> frozenset[str]:
    return tbd_exports(libsystem_tbd().read_text(), arch)


_LIBPYTHON = (
    "import sys, sysconfig, os; d = sysconfig.get_config_var('LIBDIR') or '';"
    "print('%d.%d' % sys.version_info[:2]);"
    "print('\\n'.join(os.path.join(d, n) for n in (sysconfig.get_config_var('INSTSONAME'),"
    " sysconfig.get_config_var('LDLIBRARY')) if n))"
)


def _interpreters(version: str) -> list[Path]:
    """Host CPythons `version` where the cross backend looks too: PATH, then pyenv's versions."""
    found = [Path(p) for p in [shutil.which(f"python{version}")] if p]
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if root.is_dir():
        pattern = re.compile(rf"{re.escape(version)}\.\d+")
        dirs = sorted(
            (d for d in root.iterdir() if pattern.fullmatch(d.name)),
            key=lambda d: int(d.name.rsplit(".", 1)[1]),
            reverse=True,
        )
        found += [d / "bin" / f"python{version}" for d in dirs]
    return [p for p in found if p.exists()]


@functools.cache
def libpython(version: str) -> Path:
    """The host's shared libpython of CPython `version` ("3.10"), the source of its export list."""
    tried = []
    for exe in _interpreters(version):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("_PYTHON_", "PYTHON"))}
        try:
            proc = subprocess.run(
                [str(exe), "-c", _LIBPYTHON], capture_output=True, text=True, timeout=60, env=env
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 or not lines or lines[0] != version:
            continue
        for line in lines[1:]:
            path = Path(line)
            if path.suffix != ".a" and ".so" in path.name and path.exists():
                return path
        tried.append(str(exe))
    if tried:
        raise ExportsUnavailable(
            f"{', '.join(tried)} (CPython {version}) has no shared libpython to read its exports from"
        )
    raise ExportsUnavailable(f"no CPython {version} here (PATH, pyenv) to read its exports from")


@functools.cache
def python_exports(version: str) -> frozenset[str]:
    """The C symbols CPython `version` exports, with the Mach-O leading underscore."""
    from elftools.elf.elffile import ELFFile

    path = libpython(version)
    names = set()
    with open(path, "rb") as fh:
        dynsym = ELFFile(fh).get_section_by_name(".dynsym")
        for sym in dynsym.iter_symbols():
            if (
                sym.name
                and sym["st_shndx"] != "SHN_UNDEF"
                and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
            ):
                names.add("_" + sym.name)
    return frozenset(names)
