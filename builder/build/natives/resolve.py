"""Native libraries found automatically: what a failed build's log says is missing, which Debian
package provides it (the archive's Contents index), which source package builds it (Sources), and the
`[[native]]` entry that builds it for the target.

- `missing_from_log(text)`: the headers, pkg-config modules, `-l` libraries and `*-config` tools a
  log reports missing (through the failure classifier's rules, plus every line that names one).
  When a log names nothing, `builder.build.natives.scripts.missing_from_scripts` reads the sdist.
- `contents_regex(missing, triple)`: where that file lives in a Debian arm64 package.
- `resolve(missing, apt, target)`: the entry, from the provider's source package and the build
  knowledge in knowledge.toml. When the target's glibc floor allows Debian's own binaries (bookworm:
  2.36), the entry is `debian-binary` with the -dev package; otherwise the library is built from
  Debian's source (the binaries need glibc 2.33-2.34 and would pull the wheel's tag up).
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from builder.common.classify import FailureClass, classify

KNOWLEDGE_FILE = Path(__file__).with_name("knowledge.toml")
DEBIAN_GLIBC = {"bookworm": (2, 36), "trixie": (2, 41)}


@dataclass(frozen=True)
class Missing:
    kind: str  # "header" | "pkg-config" | "library" | "config-tool" | "include-dir"
    name: str
    # where an sdist's file named it ("setup.py:12"; "" from a log): not part of its identity
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class Resolution:
    missing: Missing
    path: str  # the file in the Debian package
    binary: str  # the -dev package providing it
    source: str  # its source package
    entry: dict[str, object] = field(default_factory=dict)  # the [[native]] entry


class Archive(Protocol):
    def find_files(self, regex: str) -> list[tuple[str, tuple[str, ...]]]: ...
    def source_of(self, package: str) -> str: ...


@functools.cache
def knowledge(path: Path = KNOWLEDGE_FILE) -> dict:
    return tomllib.loads(path.read_text())


# Lines that name a missing thing, beyond the classifier's key line (a log may name several).
_LINE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("header", re.compile(r"fatal error: '?([\w./+-]+\.h(?:pp)?)'?(?::| file not found)")),
    # configure scripts' own words for a required header (acl's: "attr/error_context.h does not
    # exist"); optional headers' "checking for x.h... no" are left alone
    ("header", re.compile(r"\b([\w/+-]+/[\w.+-]+\.h|[\w+-]+\.h) does not exist")),
    ("header", re.compile(r"^configure: error: .*?\b([\w/+-]*[\w+-]\.h)\b")),
    ("pkg-config", re.compile(r"Package '?([\w.+-]+)'?,? (?:was not found|not found)")),
    ("pkg-config", re.compile(r'Dependency "([\w.+-]+)" not found')),
    # PKG_CHECK_MODULES' words: "No package 'expat' found", "Package requirements (expat) were not met"
    ("pkg-config", re.compile(r"No package '([\w.+-]+)' found")),
    ("pkg-config", re.compile(r"Package requirements \(([\w.+-]+)[^)]*\) were not met")),
    ("library", re.compile(r"(?:cannot find|unable to find library) -l([\w.+-]+)")),
    (
        "library",
        re.compile(r'unable to find (?:dynamic |static )?(?:system )?library "([\w.+-]+)"'),
    ),
    # configure scripts' own words for a required library (augeas: "Could not find a working
    # readline library")
    (
        "library",
        re.compile(r"^configure: error: [Cc]ould not find (?:a working |the )?([\w+-]+) library"),
    ),
    # sqlcipher: "Library crypto not found. Install openssl!"; parted: "GNU Parted requires libuuid"
    ("library", re.compile(r"^configure: error: .*\b[Ll]ibrary ([\w+-]+) not found")),
    ("library", re.compile(r"^configure: error: .*\brequires lib([\w+-]+)\b")),
    ("config-tool", re.compile(r"wheelfarm: ([\w.+-]+[-_]config) is not available")),
    ("config-tool", re.compile(r"([\w.+-]+[-_]config): (?:command )?not found")),
    ("config-tool", re.compile(r"No such file or directory: '([\w.+-]+[-_]config)'")),
)


def missing_from_log(text: str) -> list[Missing]:
    """What the log says is missing, in the order it says so (no duplicates). A missing CPython
    header is not a library to find (the classifier calls it python-incompatible)."""
    if classify(text).cls in (FailureClass.PYTHON_INCOMPATIBLE, FailureClass.HOST_LEAK):
        return []
    found: list[Missing] = []
    for line in text.splitlines():
        for kind, pattern in _LINE_PATTERNS:
            for m in pattern.finditer(line):
                item = Missing(kind, m.group(1))
                if item not in found and not is_python_header(item):
                    found.append(item)
    return found


def is_python_header(m: Missing) -> bool:
    return m.kind == "header" and (
        m.name in ("Python.h", "longintrepr.h", "frameobject.h") or m.name.startswith("cpython/")
    )


def contents_regex(m: Missing, triple: str) -> str:
    """An extended regex over Contents paths for where Debian installs `m`."""
    name = re.escape(m.name)
    if m.kind == "header":
        return rf"usr/include/(.*/)?{name}"
    if m.kind == "pkg-config":
        return rf"usr/(lib/{triple}|share)/pkgconfig/{name}\.pc"
    if m.kind == "library":
        return rf"usr/lib/{triple}/lib{name}\.so"
    if m.kind == "config-tool":
        return rf"usr/bin/{name}"
    if m.kind == "include-dir":  # a folder of headers (include_dirs=['/usr/include/libxml2'])
        return rf"usr/include/{name}/.+\.h"
    raise ValueError(m.kind)


def _pick(path: str, packages: tuple[str, ...]) -> str:
    prefer = knowledge().get("prefer", {}).get(path)
    if prefer in packages:
        return prefer
    devs = [p for p in packages if p.endswith("-dev")]
    return sorted(devs or packages)[0]


def entry_for(source: str, binary: str, target_glibc: tuple[int, int], suite: str) -> dict:
    """The [[native]] entry for a library: Debian's binaries when the target allows their glibc,
    else Debian's source built with what knowledge.toml says (by default `auto`: the build system the
    source tree has)."""
    if target_glibc >= DEBIAN_GLIBC.get(suite, (99, 0)):
        return {"name": source, "source": f"debian:{binary}", "build-system": "debian-binary"}
    known = knowledge().get("source", {}).get(source, {})
    entry: dict[str, object] = {
        "name": source,
        "source": f"debian:{source}",
        "build-system": known.get("build-system", "auto"),
    }
    if known.get("args"):
        entry["args"] = list(known["args"])
    return entry


def resolve(
    missing: list[Missing],
    archive: Archive,
    *,
    target_glibc: tuple[int, int],
    triple: str = "aarch64-linux-gnu",
    suite: str = "bookworm",
) -> tuple[list[Resolution], list[Missing]]:
    """(resolutions, what no Debian package provides). One entry per source package."""
    out: list[Resolution] = []
    unresolved: list[Missing] = []
    for m in missing:
        hits = archive.find_files(contents_regex(m, triple))
        if not hits:
            unresolved.append(m)
            continue
        # The shortest path is the canonical one (usr/include/zlib.h over a vendored copy).
        path = min((h[0] for h in hits), key=lambda p: (len(p), p))
        packages = tuple(sorted({pkg for p, pkgs in hits if p == path for pkg in pkgs}))
        binary = _pick(path, packages)
        source = archive.source_of(binary)
        if any(r.source == source for r in out):
            continue
        out.append(
            Resolution(m, path, binary, source, entry_for(source, binary, target_glibc, suite))
        )
    return out, unresolved
