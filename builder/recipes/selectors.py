"""cibuildwheel build selectors (`build = "cp3*"`, `skip = "*-musllinux_* cp36-*"`), same meaning.

A selector is a whitespace-separated list of fnmatch patterns with {a,b} brace expansion, matched against
build identifiers `<python tag>-<platform>` such as `cp311-manylinux_aarch64` or `cp313t-macosx_arm64`.
"""

from __future__ import annotations

import fnmatch
import functools
import re

from builder.common.targets import LINUX_ARCHES, MAC_ARCHES

_ALLOWED = re.compile(r"^[A-Za-z0-9_.*?!\[\]{},-]+$")


class SelectorError(ValueError):
    """A selector pattern that cannot match anything; the message says why."""


@functools.cache
def known_identifiers() -> tuple[str, ...]:
    """Every identifier cibuildwheel could build: a selector that matches none of them is a typo."""
    pythons = [f"cp3{m}" for m in range(6, 31)]
    pythons += [f"cp3{m}t" for m in range(13, 31)]
    pythons += [f"pp3{m}" for m in range(7, 12)] + [f"gp3{m}" for m in range(10, 14)]
    plats = [f"{os_}_{a}" for os_ in ("manylinux", "musllinux") for a in LINUX_ARCHES]
    plats += [f"macosx_{a}" for a in MAC_ARCHES]
    plats += ["win32", "win_amd64", "win_arm64", "pyodide_wasm32", "ios_arm64_iphoneos"]
    return tuple(f"{p}-{q}" for p in pythons for q in plats)


def expand_braces(pattern: str) -> list[str]:
    """Expand `{a,b}` groups (nested allowed), as bracex does for cibuildwheel."""
    depth, start = 0, -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced '}}' in {pattern!r}")
            if depth == 0:
                inner, parts, level, last = pattern[start + 1 : i], [], 0, 0
                for j, c in enumerate(inner):
                    level += (c == "{") - (c == "}")
                    if c == "," and level == 0:
                        parts.append(inner[last:j])
                        last = j + 1
                parts.append(inner[last:])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [e for part in parts for e in expand_braces(head + part + tail)]
    if depth:
        raise SelectorError(f"unbalanced '{{' in {pattern!r}")
    return [pattern]


def split_selector(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The patterns of a selector given as a string (whitespace-separated) or a list of strings."""
    items = value.split() if isinstance(value, str) else [p for v in value for p in v.split()]
    return tuple(items)


def validate_pattern(pattern: str) -> None:
    """Raise SelectorError unless `pattern` is well formed and matches some known identifier."""
    if not _ALLOWED.match(pattern):
        raise SelectorError(f"{pattern!r} has characters a build identifier never contains")
    expanded = expand_braces(pattern)
    ids = known_identifiers()
    if not any(fnmatch.filter(ids, e) for e in expanded):
        raise SelectorError(
            f"{pattern!r} matches no build identifier (they look like cp311-manylinux_aarch64)"
        )


def matches(patterns: tuple[str, ...], identifier: str) -> bool:
    """True if any pattern (after brace expansion) matches the identifier."""
    return any(fnmatch.fnmatchcase(identifier, e) for p in patterns for e in expand_braces(p))


def selected(build: tuple[str, ...], skip: tuple[str, ...], identifier: str) -> bool:
    """cibuildwheel's rule: built if it matches `build` (empty means "*") and does not match `skip`."""
    return (not build or matches(build, identifier)) and not matches(skip, identifier)
