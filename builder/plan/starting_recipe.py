"""`wheelfarm recipe new NAME`: a starting recipe from what the index and the sdist say.

The newest sdist is downloaded into the cache (sha256 verified) and listed, not extracted: C/C++/Cython/
Rust/Fortran sources and build files (CMakeLists.txt, meson.build, Cargo.toml) tell whether there is
anything to compile, and the top-level packages give the modules to import in the test.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name
from packaging.version import Version

from builder.common.atomic import atomic_write_text
from builder.common.http import UpstreamError
from builder.common.sdist import SdistError, members
from builder.common.upstream import IndexClient, ProjectPage
from builder.plan.compat import Compat, check_sdist
from builder.plan.planner import python_excluded
from builder.recipes.recipe import RecipeError, parse_recipe

NATIVE_SUFFIXES = {
    ".c": "C",
    ".h": "C",
    ".cc": "C++",
    ".cpp": "C++",
    ".cxx": "C++",
    ".hpp": "C++",
    ".pyx": "Cython",
    ".pxd": "Cython",
    ".rs": "Rust",
    ".f": "Fortran",
    ".f90": "Fortran",
}
BUILD_FILES = ("CMakeLists.txt", "meson.build", "Cargo.toml", "setup.py", "pyproject.toml")
DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
DEFAULT_TARGETS = ("manylinux_2_17_aarch64",)


class RecipeNewError(Exception):
    """A starting recipe could not be written; the message names the project or file."""


@dataclass(frozen=True)
class SdistFacts:
    filename: str
    languages: dict[str, int]  # language -> number of source files
    build_files: tuple[str, ...]
    packages: tuple[str, ...]  # top-level import packages


def sdist_members(path: Path) -> list[str]:
    try:
        return members(path)
    except SdistError as exc:
        raise RecipeNewError(str(exc)) from None


def inspect_sdist(path: Path, project: str) -> SdistFacts:
    """What an sdist contains, from its member names only."""
    languages: Counter[str] = Counter()
    build_files: set[str] = set()
    packages: set[str] = set()
    for member in sdist_members(path):
        parts = PurePosixPath(member).parts[1:]  # drop the <name>-<version>/ folder
        if not parts:
            continue
        name = parts[-1]
        if any(p in ("tests", "test", "docs", "examples", "benchmarks") for p in parts[:-1]):
            continue
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in NATIVE_SUFFIXES:
            languages[NATIVE_SUFFIXES[suffix]] += 1
        if name in BUILD_FILES:
            build_files.add("/".join(parts))
        if name == "__init__.py":
            rel = parts[1:] if parts[0] in ("src", "python", "lib") and len(parts) > 2 else parts
            if len(rel) == 2 and rel[0].isidentifier():
                packages.add(rel[0])
    if not packages:
        packages.add(canonicalize_name(project).replace("-", "_"))
    return SdistFacts(
        path.name, dict(languages), tuple(sorted(build_files)), tuple(sorted(packages))
    )


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def render_recipe(
    page: ProjectPage,
    facts: SdistFacts | None,
    *,
    pythons: Sequence[str],
    targets: Sequence[str],
    version: str | None,
    latest: int,
    compat: Sequence[Compat] = (),
) -> str:
    """A lint-clean starting recipe, with comments saying what was found."""
    name = page.name
    blocked = {c.python: c for c in compat if not c.ok}
    if blocked and len(blocked) < len(pythons):
        pythons = [py for py in pythons if py not in blocked]
    lines = [f"# Starting recipe for {name}, written by `wheelfarm recipe new` from {page.url}"]
    if facts is None:
        lines.append("# The index has no sdist for the newest release: nothing to build from yet.")
    elif facts.languages:
        found = ", ".join(f"{n} {lang}" for lang, n in sorted(facts.languages.items()))
        lines.append(f"# {facts.filename} has compiled sources ({found} files).")
    else:
        lines.append(
            f"# {facts.filename} has no C/C++/Cython/Rust sources: a pure Python wheel may suffice."
        )
    if facts and facts.build_files:
        lines.append(f"# Build files: {', '.join(facts.build_files)}.")
    for c in blocked.values():
        lines.append(
            f"# This release cannot build for CPython {c.python}: {'; '.join(c.blockers)} "
            f"({_later_text(c.later)})."
        )
    fixes = next((c.fixes for c in compat if c.fixes), {})
    if fixes:
        lines.append(
            "# Its Cython-generated C is too old for a listed CPython and the .pyx ships with it: "
            "regenerated (build-requires, before-build)."
        )
    lines += ["", "[project]", f"name = {json.dumps(name)}"]
    if version:
        lines.append(f'versions = "=={version}"')
    else:
        lines.append(f"latest = {latest}")
    lines += [f"pythons = {_toml_list(pythons)}", f"targets = {_toml_list(targets)}", ""]
    lines += ["[build]", 'backend = "cross"', 'fallback = ["emulated"]']
    lines += [f"{k} = {_toml_value(v)}" for k, v in fixes.items()]
    lines.append("")
    if facts and facts.languages:
        lines += [
            "# Native libraries the extension links against go here, for example:",
            "# [[native]]",
            '# name = "zlib"',
            '# source = "debian:zlib"',
            '# build-system = "debian-binary"',
            "",
        ]
    imports = list(facts.packages if facts else [canonicalize_name(name).replace("-", "_")])
    lines += [
        "[test]",
        f"imports = {_toml_list(imports)}",
        "# call = a line of Python that exercises the compiled code, e.g. one function call",
        "",
    ]
    return "\n".join(lines)


def new_recipe_text(
    name: str,
    client: IndexClient,
    *,
    pythons: Sequence[str] | None = None,
    targets: Sequence[str] = DEFAULT_TARGETS,
    version: str | None = None,
    latest: int = 3,
    note: Callable[[str], None] | None = None,
) -> str:
    page = client.project(name)
    releases = page.releases()
    chosen = Version(version) if version else None
    if chosen is None:
        live = [v for v, files in releases.items() if any(not f.yanked for f in files)]
        stable = [v for v in live if not v.is_prerelease] or live
        if not stable:
            raise RecipeNewError(f"{page.url}: the index lists no releases of {name!r}")
        chosen = stable[0]
    files = [f for f in releases.get(chosen, []) if not f.yanked]
    sdist = next((f for f in files if f.is_sdist), None)
    path = client.download(sdist) if sdist else None
    facts = inspect_sdist(path, name) if path else None
    if pythons is None:
        rp = sdist.requires_python if sdist else None
        pythons = [py for py in DEFAULT_PYTHONS if not python_excluded(rp, py)] or [
            DEFAULT_PYTHONS[-1]
        ]
    compat = check_sdist(path, pythons) if path else []
    for c in compat:
        if not c.ok:
            later = later_buildable(client, releases, chosen, c.python)
            compat = [replace(x, later=later) if x is c else x for x in compat]
            if note:
                note(
                    f"{name} {chosen}: this release cannot build for CPython {c.python}: "
                    + "; ".join(c.blockers)
                    + f" ({_later_text(later)})"
                )
    return render_recipe(
        page,
        facts,
        pythons=pythons,
        targets=targets,
        version=version,
        latest=latest,
        compat=compat,
    )


# How many later sdists `recipe new` downloads to find one that builds for a blocked CPython.
LATER_CHECKS = 6


def later_buildable(
    client: IndexClient,
    releases: dict[Version, list],
    chosen: Version,
    python: str,
    limit: int = LATER_CHECKS,
) -> str | None:
    """The first final release after `chosen` whose sdist passes the compatibility check for
    `python`, or None. The oldest candidates are checked first (the smallest upgrade), then the
    newest, `limit` downloads at most."""
    later = sorted(
        v
        for v, files in releases.items()
        if v > chosen and not v.is_prerelease and any(f.is_sdist and not f.yanked for f in files)
    )
    if not later:
        return None
    candidates = later[: limit - 1] + ([later[-1]] if len(later) >= limit else [])
    for v in candidates:
        sdist = next(f for f in releases[v] if f.is_sdist and not f.yanked)
        try:
            path = client.download(sdist)
        except UpstreamError:  # a release we cannot fetch is simply not an answer
            continue
        if all(c.ok for c in check_sdist(path, [python])):
            return str(v)
    return None


def _later_text(later: str | None) -> str:
    return f"release {later} can" if later else "no later release checked can either"


def write_recipe(
    name: str,
    client: IndexClient,
    out_dir: Path,
    *,
    pythons: Sequence[str] | None = None,
    targets: Sequence[str] = DEFAULT_TARGETS,
    version: str | None = None,
    latest: int = 3,
    force: bool = False,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Write out_dir/<normalized name>.toml (lint-checked before it is written) and return its path."""
    path = out_dir / f"{canonicalize_name(name)}.toml"
    if path.exists() and not force:
        raise RecipeNewError(f"{path}: already exists (use --force to overwrite)")
    text = new_recipe_text(
        name, client, pythons=pythons, targets=targets, version=version, latest=latest, note=note
    )
    try:
        parse_recipe(path, text.encode())
    except RecipeError as exc:  # a bug here, never the user's fault: say so plainly
        raise RecipeNewError(f"generated recipe does not lint: {exc}") from None
    atomic_write_text(path, text)
    return path


# --- what a build found, written back into a starting recipe (builder.build.explore) -------------


def _toml_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return _toml_list([str(v) for v in value])
    return json.dumps(str(value))


FOUND_MARK = "# Found by `wheelfarm recipe new --build` (missing files looked up in Debian):"


def with_findings(
    text: str, natives: Sequence[dict[str, object]] = (), imports: Sequence[str] = ()
) -> str:
    """`text` (a recipe) with `natives` appended as [[native]] tables before [test] and the test's
    `imports` replaced by `imports` (when given). Comments say where they came from."""
    lines = text.splitlines()
    if natives:
        # `natives` is the whole found list, in build order: it replaces an earlier found block.
        if FOUND_MARK in lines:
            start = lines.index(FOUND_MARK)
            end = lines.index("[test]", start) if "[test]" in lines[start:] else len(lines)
            del lines[start:end]
        block = [FOUND_MARK]
        for entry in natives:
            block.append("[[native]]")
            block += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
            block.append("")
        at = lines.index("[test]") if "[test]" in lines else len(lines)
        lines[at:at] = block
    if imports:
        start = lines.index("[test]") if "[test]" in lines else -1
        for i in range(start + 1, len(lines)):
            if lines[i].startswith("imports ="):
                lines[i] = f"imports = {_toml_list(imports)}"
                lines.insert(i, "# the wheel's extension modules, found by building it")
                break
    return "\n".join(lines) + "\n"


def rewrite_recipe(path: Path, text: str) -> None:
    """Write `text` over the recipe at `path` after checking that it lints."""
    try:
        parse_recipe(path, text.encode())
    except RecipeError as exc:
        raise RecipeNewError(f"updated recipe does not lint: {exc}") from None
    atomic_write_text(path, text)
