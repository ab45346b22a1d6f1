"""Native libraries an sdist names in its own build scripts and C sources, for when a failed build's
log names none (a setup.py that fails in its own words: "You need to install libcap development
headers to build this module", or just "exit status 1").

`missing_from_scripts(src)` reads the unpacked sdist with the rules of scripts.toml:
- setup.py, setup.cfg, pyproject.toml and top-level build helpers: `libraries=[...]`, header names in
  strings ("sys/capability.h", '/usr/include/foo/bar.h'), include_dirs under /usr/include,
  pkg-config calls and `*-config` / `*_config` tools;
- meson.build: `dependency('x')`, `cc.find_library('x')`, required header checks;
- CMakeLists.txt: required `pkg_check_modules`, `find_library`, `find_path`, and `find_package`
  where the library is obvious ([cmake-packages]);
- the `#include <...>` of its C/C++ sources and Cython's `cdef extern from` headers, outside code
  for other platforms and optional code (`#ifdef HAVE_...`).
It leaves out what needs no library: the sdist's own headers, headers the target toolchain has
(zig's libc, libc++ and clang headers for the target), CPython's headers and build requirements'
(numpy, pybind11), and the libraries zig links for every glibc target (libc, libm, libpthread ...).
Each Missing says where it was named (`origin`: "setup.py:12"). Names no Debian package provides are
harmless: `resolve` reports them unresolved.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.build.natives.resolve import Missing, is_python_header

RULES_FILE = Path(__file__).with_name("scripts.toml")
DEFAULT_TARGET = "manylinux_2_17_aarch64"
MAX_BYTES = 2_000_000  # larger files are generated or data, not build scripts
MAX_FILES = 20_000
_QUOTED = re.compile(r"""'([^'\n]*)'|"([^"\n]*)\"""")
_NAME = {
    "header": re.compile(r"[\w.+-]+(?:/[\w.+-]+)*\.h(?:pp|h)?"),
    "library": re.compile(r"[A-Za-z0-9_][\w.+-]*"),
    "pkg-config": re.compile(r"[A-Za-z_][\w.+-]*"),
    "config-tool": re.compile(r"[A-Za-z][\w.+-]*[-_]config"),
    "include-dir": re.compile(r"[\w+-][\w.+-]*(?:/[\w.+-]+)*"),
    "cmake-package": re.compile(r"[\w-]+"),
}


@dataclass(frozen=True)
class Rule:
    group: str
    kind: str
    pattern: re.Pattern[str]
    files: tuple[str, ...] = ()
    words: bool = False
    skip: re.Pattern[str] | None = None
    need: re.Pattern[str] | None = None
    stop: frozenset[str] = frozenset()
    drop: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rules:
    groups: dict[str, dict[str, tuple[str, ...]]]
    rules: tuple[Rule, ...]
    skip_dirs: frozenset[str]
    sources: tuple[str, ...]
    foreign: re.Pattern[str]  # macros of another platform
    linux: re.Pattern[str]  # macros of Linux
    optional: re.Pattern[str]  # macros of optional features
    ignore: dict[str, re.Pattern[str]]
    cmake_packages: dict[str, tuple[str, str]]
    foreign_files: tuple[str, ...]
    py_foreign: re.Pattern[str]  # an if/elif condition or def name for another platform


def _any_of(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


@functools.cache
def rules(path: Path = RULES_FILE) -> Rules:
    data = tomllib.loads(path.read_text())
    words = data.get("words", {})

    def opt(r: dict, key: str) -> re.Pattern[str] | None:
        return re.compile(r[key]) if key in r else None

    return Rules(
        groups={name: {k: tuple(v) for k, v in g.items()} for name, g in data["groups"].items()},
        rules=tuple(
            Rule(
                r["group"],
                r["kind"],
                re.compile(r["pattern"]),
                tuple(r.get("files", ())),
                bool(r.get("words", False)),
                opt(r, "skip"),
                opt(r, "need"),
                frozenset(words[r["stop"]] if isinstance(r.get("stop"), str) else ()),
                frozenset(r.get("drop", ())),
            )
            for r in data["rule"]
        ),
        skip_dirs=frozenset(data["scan"]["skip-dirs"]),
        sources=tuple(data["scan"]["sources"]),
        foreign=re.compile(rf"\b(?:{'|'.join(data['scan']['foreign-macros'])})\b"),
        linux=re.compile(rf"\b(?:{'|'.join(data['scan']['linux-macros'])})\b"),
        optional=re.compile(rf"\b(?:{'|'.join(data['scan']['optional-macros'])})\b"),
        ignore={
            kind: re.compile("|".join(f"(?:{p})" for p in pats))
            for kind, pats in data["ignore"].items()
        },
        cmake_packages={
            name: next(iter(v.items())) for name, v in data.get("cmake-packages", {}).items()
        },
        foreign_files=tuple(data["scan"]["foreign-files"]),
        py_foreign=re.compile(
            rf"""(?i)['"](?:{"|".join(data["python-platforms"]["strings"])})['"]"""
            rf"""|(?i:[a-z0-9]*_)?(?:{"|".join(data["python-platforms"]["words"])})\w*\b"""
        ),
    )


# --------------------------------------------------------------------------------------------
# Files


def _walk(src: Path, skip_dirs: frozenset[str]) -> Iterator[Path]:
    count = 0
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d.lower() not in skip_dirs and not d.startswith("."))
        for name in sorted(files):
            count += 1
            if count > MAX_FILES:
                return
            yield Path(root) / name


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            return ""
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _group_files(src: Path, spec: dict[str, tuple[str, ...]], all_files: list[Path]) -> list[Path]:
    top = spec.get("top", ())
    anywhere = spec.get("any", ())
    out = []
    for p in all_files:
        globs = anywhere if p.parent != src else (*top, *anywhere)
        if any(fnmatch.fnmatchcase(p.name, g) for g in globs):
            out.append(p)
    # setup.py first: its words are the likeliest to be the build's
    return sorted(out, key=lambda p: (p.parent != src, p.name != "setup.py", str(p)))


# --------------------------------------------------------------------------------------------
# Names


def _names(text: str, rule: Rule) -> list[str]:
    """The quoted strings of `text`; without quotes, its words when the rule takes words."""
    quoted = [a or b for a, b in _QUOTED.findall(text)]
    if not quoted and not rule.words:
        return []  # libraries=[n for n in found]: names only a run would know
    out = []
    for word in quoted or re.split(r"[\s,]+", text):
        if word in rule.stop:
            break
        if word and word not in rule.drop:
            out.append(word)
    return out


def _clean(kind: str, name: str, r: Rules) -> Missing | None:
    name = name.strip()
    if kind == "cmake-package":
        mapped = r.cmake_packages.get(name)
        return Missing(mapped[0], mapped[1]) if mapped else None
    if kind == "pkg-config":
        name = re.split(r"[<>=!\s]", name, maxsplit=1)[0]
        if name.startswith("-"):
            return None
    elif kind == "library":
        name = re.sub(r"^-l", "", name)
        name = re.sub(r"\.(?:so(?:\.\d+)*|a)$", "", name)
        if name.startswith("lib") and len(name) > 3:  # CMake's NAMES libcap: the library cap
            name = name[3:]
    elif kind == "header":
        if "/include/" in f"/{name}":
            name = f"/{name}".rsplit("/include/", 1)[1]
        elif name.startswith("/"):
            name = name.rsplit("/", 1)[1]
        name = name.removeprefix("./")
    elif kind == "include-dir":
        name = name.rstrip("/")
        if name.endswith((".h", ".hpp")):
            return None
    if not _NAME[kind].fullmatch(name):
        return None
    ignored = r.ignore.get(
        {
            "header": "headers",
            "library": "libraries",
            "pkg-config": "pkg-config",
            "config-tool": "config-tools",
            "include-dir": "include-dirs",
        }[kind]
    )
    if ignored is not None and ignored.fullmatch(name):
        return None
    return Missing(kind, name)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


_PY_BLOCK = re.compile(r"^(\s*)(?:(?:if|elif)\s+(.*?)|def\s+(\w+)\s*\(.*?):")


def _foreign_python_lines(text: str, r: Rules) -> set[int]:
    """Line numbers of a Python script's code for another platform (see [python-platforms])."""
    lines = text.splitlines()
    out: set[int] = set()
    for number, line in enumerate(lines, 1):
        m = _PY_BLOCK.match(line)
        if not m or number in out:
            continue
        indent, cond, func = len(m.group(1)), m.group(2), m.group(3)
        if cond is not None:
            if re.search(r"!=|\bnot\b", cond) or not r.py_foreign.search(cond):
                continue
        elif not r.py_foreign.search(func):
            continue
        out.add(number)
        for later, text_line in enumerate(lines[number:], number + 1):
            stripped = text_line.strip()
            if stripped and len(text_line) - len(text_line.lstrip()) <= indent:
                break
            out.add(later)
    return out


def _from_rules(src: Path, files: list[Path], r: Rules) -> Iterator[Missing]:
    for group, spec in r.groups.items():
        group_rules = [rule for rule in r.rules if rule.group == group]
        for path in _group_files(src, spec, files):
            text = _read(path)
            if not text:
                continue
            rel = path.relative_to(src).as_posix()
            foreign = _foreign_python_lines(text, r) if path.suffix == ".py" else set()
            hits: list[tuple[int, Missing]] = []  # in the file's order, not the rules'
            for rule in group_rules:
                if rule.files and not any(fnmatch.fnmatchcase(path.name, g) for g in rule.files):
                    continue
                for m in rule.pattern.finditer(text):
                    whole = m.group(0)
                    if rule.skip and rule.skip.search(whole):
                        continue
                    if rule.need and not rule.need.search(whole):
                        continue
                    for name in _names(m.group("names"), rule):
                        if item := _clean(rule.kind, name, r):
                            hits.append((m.start(), item))
            for offset, item in sorted(hits, key=lambda h: h[0]):
                line = _line_of(text, offset)
                if line not in foreign:
                    yield Missing(item.kind, item.name, origin=f"{rel}:{line}")


# --------------------------------------------------------------------------------------------
# C and Cython sources

_DIRECTIVE = re.compile(r"^\s*#\s*(ifdef|ifndef|if|elif|else|endif|include)\b\s*(.*)$")
_ANGLE = re.compile(r"<([^>\s]+)>")
_CYTHON_EXTERN = re.compile(r"""^\s*cdef\s+extern\s+from\s+(?:"([^"]+)"|'([^']+)'|<([^>]+)>)""")


def _condition(directive: str, cond: str, r: Rules) -> str:
    """What an #if/#ifdef/#ifndef/#elif branch is: "foreign" (another platform, or #if 0),
    "optional" (a HAVE_/USE_/... feature), "linux" (the branch a Linux build takes), "unknown"."""
    cond = re.sub(r"/\*.*?\*/|//.*", "", cond).strip()
    if directive == "ifdef":
        cond = f"defined({cond})"
    elif directive == "ifndef":
        cond = f"!defined({cond})"
    if re.fullmatch(r"0+", cond):
        return "foreign"
    positive: list[str] = []
    negative: list[str] = []
    for m in re.finditer(r"(!\s*)?(?:defined\s*\(?\s*)?\b([A-Za-z_]\w*)\b", cond):
        (negative if m.group(1) else positive).append(m.group(2))
    pos, neg = " ".join(positive), " ".join(negative)
    if r.foreign.search(pos) and not r.linux.search(pos):
        return "foreign"
    if r.linux.search(pos) or (r.foreign.search(neg) and "||" not in cond):
        return "linux"
    if r.optional.search(pos):
        return "optional"
    return "unknown"


def _includes(text: str, r: Rules, cython: bool) -> Iterator[tuple[int, str]]:
    """(line number, header) of the includes a Linux build of this file needs."""
    # one frame per open #if: [this branch's class, an earlier branch of the chain was Linux's]
    stack: list[list] = []
    for number, line in enumerate(text.splitlines(), 1):
        if cython:
            if m := _CYTHON_EXTERN.match(line):
                yield number, m.group(1) or m.group(2) or m.group(3)
            continue
        m = _DIRECTIVE.match(line)
        if not m:
            continue
        directive, rest = m.groups()
        if directive in ("if", "ifdef", "ifndef"):
            state = _condition(directive, rest, r)
            stack.append([state, state == "linux"])
        elif directive == "elif" and stack:
            frame = stack[-1]
            state = "foreign" if frame[1] else _condition("if", rest, r)
            frame[0], frame[1] = state, frame[1] or state == "linux"
        elif directive == "else" and stack:
            frame = stack[-1]
            frame[0] = "foreign" if frame[1] else "unknown"
        elif directive == "endif" and stack:
            stack.pop()
        elif directive == "include":
            if any(f[0] in ("foreign", "optional") for f in stack):
                continue
            if inc := _ANGLE.match(rest.strip()):
                yield number, inc.group(1)


def _from_sources(src: Path, files: list[Path], r: Rules) -> Iterator[Missing]:
    for path in files:
        if not any(fnmatch.fnmatchcase(path.name, g) for g in r.sources):
            continue
        if any(fnmatch.fnmatch(path.name.lower(), g) for g in r.foreign_files):
            continue
        text = _read(path)
        if not text or "Generated by Cython" in text[:300]:  # its .pyx says what it includes
            continue
        rel = path.relative_to(src).as_posix()
        cython = path.suffix in (".pyx", ".pxd", ".pxi")
        for number, header in _includes(text, r, cython):
            if item := _clean("header", header, r):
                yield Missing("header", item.name, origin=f"{rel}:{number}")


# --------------------------------------------------------------------------------------------
# What needs no library


@functools.cache
def _python_include() -> Path:
    return Path(sysconfig.get_paths()["include"])


def _toolchain_dirs(target: str) -> tuple[Path, ...]:
    from builder.build.toolchain.host import ToolchainError, target_include_dirs

    try:
        return target_include_dirs(target)
    except (ToolchainError, ValueError):  # a macOS tag: the Linux toolchain's answers
        return target_include_dirs(DEFAULT_TARGET)


def _needs_no_library(m: Missing, own: set[str], toolchain: tuple[Path, ...]) -> bool:
    if m.kind != "header":
        return False
    if is_python_header(m) or (_python_include() / m.name).is_file():
        return True
    if m.name in own:  # the sdist's own (as named, or named by a tail of its path)
        return True
    return any((d / m.name).is_file() for d in toolchain)


def _own_paths(src: Path, files: list[Path]) -> set[str]:
    """Every tail of every file path in the sdist: `<zstd.h>` is its own when it ships lib/zstd.h."""
    out: set[str] = set()
    for p in files:
        parts = p.relative_to(src).parts
        for i in range(len(parts)):
            out.add("/".join(parts[i:]))
    return out


def missing_from_scripts(src: Path, *, target: str = DEFAULT_TARGET) -> list[Missing]:
    """What the unpacked sdist at `src` names that a native library provides, in the order found
    (build scripts first, then sources), once each; see the module docstring."""
    r = rules()
    files = list(_walk(src, r.skip_dirs))
    own = _own_paths(src, list(_walk(src, frozenset())))
    toolchain = _toolchain_dirs(target)
    found: list[Missing] = []
    for m in (*_from_rules(src, files, r), *_from_sources(src, files, r)):
        if m not in found and not _needs_no_library(m, own, toolchain):
            found.append(m)
    return found
