"""Source archives: unpack them safely, list them, and read their static build requirements.

One implementation for every stage that opens an sdist (the backends, the starting-recipe inspector)
or a library's source tarball (native libraries). Tarballs are extracted with the "data" filter (no
absolute paths, no links out of the folder, no devices, no foreign owners); zip members that would land
outside the folder are refused.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import functools
import re
import tarfile
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name


class SdistError(ValueError):
    """An archive that cannot be unpacked or read; the message names the file and the problem."""


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack `archive` (.tar.*, .tgz or .zip) into `dest`; return its single top folder, or `dest`
    when the archive has several top-level entries (or a top-level setup.py)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                root = dest.resolve()
                for info in zf.infolist():
                    if not (dest / info.filename).resolve().is_relative_to(root):
                        raise SdistError(f"{archive.name}: unsafe path {info.filename!r}")
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise SdistError(f"{archive.name}: cannot unpack: {exc}") from None
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def members(archive: Path) -> list[str]:
    """The member names of an sdist, without unpacking it."""
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                return zf.namelist()
        with tarfile.open(archive) as tf:
            return tf.getnames()
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        reason = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
        raise SdistError(f"{archive}: not a readable sdist ({reason})") from None


def build_requirements(project: Path) -> list[str]:
    """The static build requirements of an unpacked project: pyproject.toml's [build-system] requires,
    with PEP 517's defaults when there is none (as pypa/build's ProjectBuilder reads them)."""
    from build import BuildException, ProjectBuilder

    try:
        requires = sorted(ProjectBuilder(project).build_system_requires)
    except BuildException as exc:
        raise SdistError(f"{project / 'pyproject.toml'}: {exc}") from None
    try:
        extra = [*setup_requires(project), *era_requirements(project)]
        return merge_requirements([*requires, *extra])
    except InvalidRequirement as exc:
        raise SdistError(f"{project / 'pyproject.toml'}: {exc}") from None


ERA_RULES = Path(__file__).with_name("build_era_rules.toml")


@functools.cache
def _era_rules(path: Path = ERA_RULES) -> tuple[tuple[str, re.Pattern[str], str], ...]:
    data = tomllib.loads(path.read_text())
    return tuple((r["file"], re.compile(r["pattern"], re.M), r["requires"]) for r in data["rule"])


def setup_requires(project: Path) -> list[str]:
    """A legacy project's `setup_requires` (setup.cfg's [options], or a literal list given to
    setup() in setup.py, read without running it): with `pip wheel --no-build-isolation` nothing
    else would install them (ssdeep's cffi and six). Projects with a [build-system] table say it
    there instead."""
    if (project / "pyproject.toml").is_file():
        try:
            data = tomllib.loads((project / "pyproject.toml").read_text(errors="replace"))
        except tomllib.TOMLDecodeError:
            data = {}
        if "requires" in data.get("build-system", {}):
            return []
    found: list[str] = []
    cfg = project / "setup.cfg"
    if cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        with contextlib.suppress(configparser.Error):
            parser.read_string(cfg.read_text(errors="replace"))
            raw = parser.get("options", "setup_requires", fallback="")
            found += [line.strip() for line in raw.replace(";", "\n").splitlines() if line.strip()]
    setup_py = project / "setup.py"
    if setup_py.is_file():
        with contextlib.suppress(SyntaxError, ValueError):
            found += _literal_keyword(
                ast.parse(setup_py.read_text(errors="replace")), "setup_requires"
            )
    out = []
    for text in found:
        with contextlib.suppress(InvalidRequirement):
            out.append(str(Requirement(text)))
    return out


def _literal_keyword(tree: ast.Module, keyword: str) -> list[str]:
    """The strings of `keyword=[...]` in any call, or of the module-level list it names."""
    names = {
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg != keyword:
                continue
            return _strings(kw.value, names)
    return []


def _strings(node: ast.expr, names: dict[str, ast.expr], depth: int = 0) -> list[str]:
    """The string literals of a list expression: a literal list or tuple, a module-level name for
    one, and `+` of those (ssdeep: `setup_requires=["cffi", "six"] + setup_requires`)."""
    if depth > 5:
        return []
    if isinstance(node, ast.Name) and node.id in names:
        return _strings(names[node.id], names, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _strings(node.left, names, depth + 1) + _strings(node.right, names, depth + 1)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []


def era_requirements(project: Path) -> list[str]:
    """Upper bounds an older project's build scripts need (build_era_rules.toml): a setup.py that
    imports pkg_resources builds only with a setuptools that still ships it, as a user would pin
    with PIP_CONSTRAINT."""
    out = []
    for name, pattern, requires in _era_rules():
        path = project / name
        if path.is_file() and pattern.search(path.read_text(errors="replace")):
            out.append(requires)
    return out


def merge_requirements(requires: Sequence[str]) -> list[str]:
    """Normalized requirements with one entry per (name, extras, marker): specifiers of the same
    project are intersected (`setuptools>=40.8.0` and `setuptools<82` -> `setuptools<82,>=40.8.0`)."""
    merged: dict[tuple[str, str, str], Requirement] = {}
    for text in requires:
        req = Requirement(text)
        key = (canonicalize_name(req.name), ",".join(sorted(req.extras)), str(req.marker or ""))
        if key in merged and not req.url:
            merged[key].specifier &= req.specifier
        else:
            merged[key] = req
    return sorted({str(r) for r in merged.values()})
