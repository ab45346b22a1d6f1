"""Pinned requirements and lock files -> (name, version) pins, and what arm64 wheels they lack.

Reads pip requirements files (comments, `--hash` options, markers, line continuations; `-r`/`-e`/option
lines are ignored with a note) and the simple pins of `uv.lock`, `pylock.toml` and `poetry.lock`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from builder.common.targets import parse_python, parse_target
from builder.common.upstream import IndexClient
from builder.plan.planner import BUILD, SKIP, Decision, Plan, PlanError, plan
from builder.recipes.recipe import BuildOptions, Recipe, TestSpec

_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: Marker | None = field(default=None, compare=False)
    source: str = ""  # file:line, for messages


class PinsError(ValueError):
    """A requirements or lock file that cannot be read at all."""


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations, then drop comments (pip's order), keeping the first line number."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = number
        stripped = raw.rstrip()
        if stripped.endswith("\\") and not stripped.lstrip().startswith("#"):
            buf += stripped[:-1] + " "
            continue
        logical = _COMMENT.sub("", buf + raw).strip()
        if logical:
            out.append((start, logical))
        buf = ""
    if logical := _COMMENT.sub("", buf).strip():
        out.append((start, logical))
    return out


def parse_requirements(path: Path, text: str) -> tuple[list[Pin], list[str]]:
    """Pins of a requirements file and notes about every line that is not a usable pin."""
    pins, notes = [], []
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        if line.startswith("-"):
            notes.append(f"{where}: option line ignored: {line.split()[0]}")
            continue
        # Per-requirement options (--hash=..., --config-settings ...) follow the requirement.
        req_text = re.split(r"\s--?[a-zA-Z]", " " + line, maxsplit=1)[0].strip()
        try:
            req = Requirement(req_text)
        except InvalidRequirement as exc:
            notes.append(f"{where}: not a requirement ({str(exc).splitlines()[0]})")
            continue
        if req.url:
            notes.append(f"{where}: {req.name} is a direct URL reference, ignored")
            continue
        exact = [s for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if len(exact) != 1:
            notes.append(
                f"{where}: {req.name} is not pinned to one version ({req.specifier or 'no version'}), ignored"
            )
            continue
        pins.append(Pin(req.name, exact[0].version, req.marker, where))
    return pins, notes


def parse_lock(path: Path, data: dict[str, Any]) -> tuple[list[Pin], list[str]]:
    """Pins from uv.lock / poetry.lock (`[[package]]`) or pylock.toml (`[[packages]]`)."""
    entries = data.get("packages") if "packages" in data else data.get("package")
    if not isinstance(entries, list):
        raise PinsError(
            f"{path}: no [[package]] or [[packages]] tables: not a lock file I can read"
        )
    pins, notes = [], []
    for i, entry in enumerate(entries):
        name, version = entry.get("name"), entry.get("version")
        where = f"{path}:package[{i}]"
        source = entry.get("source") or {}
        if isinstance(source, dict) and (
            {"editable", "virtual", "directory", "git", "path"} & set(source)
        ):
            notes.append(f"{where}: {name} is a local or VCS package, ignored")
            continue
        if not isinstance(name, str) or not isinstance(version, str):
            notes.append(f"{where}: no name and version, ignored")
            continue
        marker = entry.get("marker")
        try:
            pins.append(Pin(name, version, Marker(marker) if marker else None, where))
        except Exception:
            pins.append(Pin(name, version, None, where))
    return pins, notes


def read_pins(path: Path) -> tuple[list[Pin], list[str]]:
    """Pins and notes from a requirements file or a lock file (chosen by the file name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PinsError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix in (".lock", ".toml") or path.name.startswith("pylock."):
        try:
            data = tomllib.loads(raw.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PinsError(f"{path}: not a TOML lock file: {exc}") from None
        return parse_lock(path, data)
    return parse_requirements(path, raw.decode("utf-8", errors="replace"))


def marker_env(python: str, target: str) -> dict[str, str]:
    """The PEP 508 marker environment of CPython `python` on `target`."""
    major, minor, _ = parse_python(python)
    t = parse_target(target)
    mac = t.os == "macosx"
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{major}.{minor}.0",
        "os_name": "posix",
        "platform_machine": ("arm64" if t.arch in ("arm64", "universal2") else t.arch)
        if mac
        else t.arch,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Darwin" if mac else "Linux",
        "platform_version": "",
        "python_full_version": f"{major}.{minor}.0",
        "python_version": f"{major}.{minor}",
        "sys_platform": "darwin" if mac else "linux",
    }


@dataclass(frozen=True)
class PinReport:
    pin: Pin
    recipe: Path | None  # the existing recipe for this project, if any
    decisions: tuple[Decision, ...]

    @property
    def missing(self) -> list[Decision]:
        return [d for d in self.decisions if d.status == BUILD]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.pin.name,
            "version": self.pin.version,
            "source": self.pin.source,
            "recipe": str(self.recipe) if self.recipe else None,
            "missing": [d.to_dict() for d in self.missing],
            "covered": [d.to_dict() for d in self.decisions if d.status != BUILD],
        }


def plan_pins(
    pins: Sequence[Pin],
    upstream: IndexClient,
    *,
    pythons: Sequence[str],
    targets: Sequence[str],
    recipes_dir: Path | None = None,
    own: IndexClient | None = None,
) -> tuple[list[PinReport], tuple[PlanError, ...]]:
    """For each pin: which (python, target) have no wheel, and whether a recipe exists for it."""
    recipes = [
        Recipe(
            name=pin.name,
            path=Path(pin.source),
            content_hash="",
            versions=SpecifierSet(f"=={pin.version}"),
            latest=None,
            pythons=tuple(pythons),
            targets=tuple(targets),
            build=BuildOptions(),
            native=(),
            test=TestSpec(imports=()),
        )
        for pin in pins
    ]
    result: Plan = plan(recipes, upstream, own)
    by_name: dict[str, list[Decision]] = {}
    for d in result.decisions:
        by_name.setdefault(canonicalize_name(d.project), []).append(d)
    reports = []
    for pin in pins:
        canon = canonicalize_name(pin.name)
        decisions = []
        for d in by_name.get(canon, []):
            if pin.marker and not pin.marker.evaluate(marker_env(d.python, d.target)):
                d = Decision(
                    d.project,
                    d.version,
                    d.python,
                    d.target,
                    SKIP,
                    f"marker {pin.marker} is false here",
                )
            decisions.append(d)
        recipe = recipes_dir / f"{canon}.toml" if recipes_dir else None
        reports.append(
            PinReport(pin, recipe if recipe and recipe.exists() else None, tuple(decisions))
        )
    return reports, result.errors
