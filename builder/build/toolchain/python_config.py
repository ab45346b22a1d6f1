"""`python3-config` for the target CPython of a cross build (run by the stand-in the toolchain writes).

The stand-in runs this file with the build venv's interpreter, in the cross build's environment: the
aarch64 `_sysconfigdata` module is selected (`_PYTHON_SYSCONFIGDATA_NAME`, on PYTHONPATH), so
sysconfig answers for the target. The answers are CPython's `python-config` ones, except where the
host's would leak into the build: `--libs`/`--ldflags` name no host library or folder (extensions
need no libpython on Linux; `-lpython3.X` with `--embed` only, as for a shared build), and
`--includes`/`--cflags` name the build CPython's headers, which are allowed (the x86_64 and aarch64
pyconfig.h agree on Linux). `--prefix`, `--exec-prefix` and `--configdir` are what sysconfig says
(the build CPython's folders): a build that links from them is still caught by the leak scan.

Standard library only: it runs in the build venv, where wheelfarm is not installed.
Usage: python python_config.py NAME [OPTIONS]  (NAME: how it was called, e.g. python3.11-config)
"""

from __future__ import annotations

import re
import sys
import sysconfig

OPTIONS = (
    "prefix",
    "exec-prefix",
    "includes",
    "libs",
    "cflags",
    "ldflags",
    "extension-suffix",
    "help",
    "abiflags",
    "configdir",
    "embed",
)


def _var(name: str) -> str:
    value = sysconfig.get_config_var(name)
    return "" if value is None else str(value)


def answers(options: list[str]) -> list[str]:
    """One line per option, in order (CPython's python-config prints them so)."""
    version = _var("VERSION")
    abiflags = _var("ABIFLAGS")
    embed = "--embed" in options
    out: list[str] = []
    for opt in options:
        if opt == "--prefix":
            out.append(_var("prefix"))
        elif opt == "--exec-prefix":
            out.append(_var("exec_prefix"))
        elif opt in ("--includes", "--cflags"):
            paths = sysconfig.get_paths()
            includes = dict.fromkeys(["-I" + paths["include"], "-I" + paths["platinclude"]])
            flags = list(includes)
            if opt == "--cflags":
                flags += _var("CFLAGS").split()
            out.append(" ".join(flags))
        elif opt in ("--libs", "--ldflags"):
            out.append(f"-lpython{version}{abiflags}" if embed else "")
        elif opt == "--extension-suffix":
            out.append(_var("EXT_SUFFIX"))
        elif opt == "--abiflags":
            out.append(abiflags)
        elif opt == "--configdir":
            out.append(_var("LIBPL"))
    return out


def _usage(name: str) -> str:
    return f"Usage: {name} --" + "|--".join(OPTIONS)


def _wrong_version(name: str) -> str | None:
    """Why `name` (python3.12-config) does not describe this build's CPython, or None."""
    m = re.fullmatch(r"python(\d+(?:\.\d+)?)?(t?)-config", name)
    if not m or not m.group(1):
        return None
    built = _var("VERSION") + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
    asked = m.group(1) + m.group(2)
    if built == asked or (asked == built.split(".")[0]):
        return None
    return f"this build is for CPython {built}, not {asked}"


def main(argv: list[str]) -> int:
    name, options = (argv[0], argv[1:]) if argv else ("python3-config", [])
    if why := _wrong_version(name):
        print(f"wheelfarm: {name} is not available for the target: {why}", file=sys.stderr)
        return 127
    if not options or any(not o.startswith("--") or o[2:] not in OPTIONS for o in options):
        print(_usage(name), file=sys.stderr)
        return 1
    if "--help" in options:
        print(_usage(name))
        return 0
    for line in answers(options):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
