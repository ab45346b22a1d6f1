"""The planner: recipes + the upstream index + wheelfarm's own index -> the wheels to build, and why.

For every recipe, selected version, Python and target, exactly one decision: available upstream (which
file), already built by us (which file), skipped (no sdist, yanked, requires-python, selectors), or to
build (only an sdist, no wheel for this platform, no wheel for this Python, upstream wheel fails the
architecture check). Compatibility is `packaging.tags` only (see builder.common.targets).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from builder.common.targets import (
    TargetError,
    cibw_identifier,
    parse_python,
    parse_target,
    supported_tags,
    tag_priority,
)
from builder.common.upstream import (
    DistFile,
    IndexClient,
    ProjectNotFound,
    ProjectPage,
    UpstreamError,
)
from builder.recipes.recipe import Recipe, RecipeError, load_recipe, recipe_files

# A hook for the binary checker (builder/check): given an upstream wheel that packaging.tags says fits
# the target, return None if its binaries really are for that target, else a one-line reason.
WheelCheck = Callable[[DistFile, str], str | None]

UPSTREAM, OURS, BUILD, SKIP = "upstream", "ours", "build", "skip"


@dataclass(frozen=True)
class Job:
    """One wheel to build; `to_dict()` is one entry of a GitHub Actions matrix `include:` list."""

    project: str
    version: str
    sdist_url: str
    sdist_sha256: str
    sdist_filename: str
    python: str
    target: str
    reason: str
    recipe_path: str
    # the index the job was planned against (its simple/ URL): the parity gate compares with that
    # index's wheels; "" in plans written before it was recorded (then PyPI)
    index: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing = required - set(data)
        if missing:
            raise ValueError(f"job is missing {', '.join(sorted(missing))}")
        return cls(**{k: str(data[k]) for k in names if k in data})


@dataclass(frozen=True)
class Decision:
    """What the plan says about one (project, version, python, target)."""

    project: str
    version: str
    python: str
    target: str
    status: str  # upstream | ours | build | skip
    reason: str
    file: str | None = None  # the wheel that satisfies the cell (upstream / ours)
    job: Job | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "job"}


@dataclass(frozen=True)
class PlanError:
    """A recipe or project that could not be planned: one line naming the file or URL."""

    source: str  # the recipe path, or the project
    message: str

    def __str__(self) -> str:
        return (
            self.message
            if self.message.startswith(self.source)
            else f"{self.source}: {self.message}"
        )

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "message": str(self)}


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]
    errors: tuple[PlanError, ...]
    cpu_seconds: float = 0.0  # the planner's own CPU time (deciding, not fetching)

    @property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(d.job for d in self.decisions if d.job is not None)

    def by_status(self, status: str) -> list[Decision]:
        return [d for d in self.decisions if d.status == status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "include": [j.to_dict() for j in self.jobs],
            "available": [d.to_dict() for d in self.decisions if d.status in (UPSTREAM, OURS)],
            "skipped": [d.to_dict() for d in self.by_status(SKIP)],
            "errors": [e.to_dict() for e in self.errors],
            "summary": {s: len(self.by_status(s)) for s in (BUILD, UPSTREAM, OURS, SKIP)}
            | {"errors": len(self.errors)},
        }


def python_excluded(requires_python: str | None, python: str) -> bool:
    """True if requires-python rules out every release of this CPython minor version."""
    if not requires_python:
        return False
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return False  # an unreadable constraint constrains nothing (pip warns and ignores it too)
    major, minor, _ = parse_python(python)
    # Checking the first and a late patch release of the minor catches ">=3.11.2" and "<3.11.5".
    return not any(spec.contains(f"{major}.{minor}.{patch}") for patch in (0, 99))


def preferred_sdist(files: Iterable[DistFile]) -> DistFile | None:
    """The sdist to build from: the PEP 625 `.tar.gz` when a release has several, else the first."""
    sdists = [f for f in files if f.is_sdist]
    return next((f for f in sdists if f.filename.endswith(".tar.gz")), None) or (
        sdists[0] if sdists else None
    )


def select_versions(recipe: Recipe, page: ProjectPage) -> tuple[list[Version], list[Version]]:
    """(versions to plan, yanked versions in the same range) from a page, newest first."""
    releases = page.releases()
    matching = list(recipe.versions.filter(releases))
    yanked = {v for v in matching if releases[v] and all(f.yanked for f in releases[v])}
    live = [v for v in matching if v not in yanked]
    if recipe.latest is not None:
        live = live[: recipe.latest]
    oldest = live[-1] if live else None
    yanked_in_range = sorted((v for v in yanked if oldest is None or v >= oldest), reverse=True)
    if recipe.latest is not None and not live:
        yanked_in_range = yanked_in_range[: recipe.latest]
    return live, yanked_in_range


def _best(files: Iterable[DistFile], python: str, target: str) -> list[DistFile]:
    """Wheels packaging.tags says install on (python, target), the installer's preferred first."""
    ok = supported_tags(python, target)
    rank = tag_priority(python, target)
    found = [f for f in files if f.is_wheel and not f.yanked and f.tags & ok]
    return sorted(found, key=lambda f: min(rank[t] for t in f.tags & ok))


def _newer_platform(wheels: list[DistFile], python: str, target: str) -> str | None:
    """A wheel that would fit if the target were a newer glibc/musl/macOS (e.g. manylinux_2_34)."""
    tgt = parse_target(target)
    ok = supported_tags(python, target)
    for f in wheels:
        for t in f.tags:
            try:
                p = parse_target(t.platform)
            except TargetError:
                continue
            same_level = f"{p.os}_{tgt.version[0]}_{tgt.version[1]}_{p.arch}"
            if (
                p.os == tgt.os
                and p.version > tgt.version
                and Tag(t.interpreter, t.abi, same_level) in ok
            ):
                return t.platform
    return None


def _why_build(wheels: list[DistFile], python: str, target: str) -> str:
    if not wheels:
        return "only an sdist upstream"
    if newer := _newer_platform(wheels, python, target):
        return f"upstream wheel needs a newer platform ({newer})"
    plats = set(parse_target(target).platforms)
    interp = cibw_identifier(python, target).split("-")[0]
    for_platform = any(t.platform in plats for f in wheels for t in f.tags)
    for_python = any(t.interpreter in (interp, "py3") for f in wheels for t in f.tags)
    if for_platform:
        return f"no wheel for Python {python} on this platform"
    if for_python:
        return f"no wheel for this platform ({target})"
    return "no wheel for this platform or Python"


class WheelCheckError(Exception):
    """The architecture-check hook itself failed (e.g. could not download the wheel)."""


def decide(
    recipe: Recipe,
    page: ProjectPage,
    own: ProjectPage | None,
    *,
    pythons: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    wheel_check: WheelCheck | None = None,
) -> list[Decision]:
    """Every decision for one recipe against its upstream page (and our own index's page)."""
    out: list[Decision] = []
    cells = [
        (py, tgt)
        for py in recipe.pythons
        if not pythons or py in pythons
        for tgt in recipe.targets
        if not targets or tgt in targets
    ]
    live, yanked = select_versions(recipe, page)
    releases = page.releases()
    own_releases = own.releases() if own else {}
    name = page.name

    shown = {v: str(v) for v in (*live, *yanked)}  # formatted once, used by every cell

    def cell(version: Version, py: str, tgt: str, status: str, reason: str, **kw: Any) -> None:
        out.append(Decision(name, shown[version], py, tgt, status, reason, **kw))

    for version in yanked:
        files = releases[version]
        reason = next((f.yanked_reason for f in files if f.yanked_reason), None)
        for py, tgt in cells:
            cell(version, py, tgt, SKIP, "yanked" + (f": {reason}" if reason else ""))

    for version in live:
        files = [f for f in releases[version] if not f.yanked]
        sdists = [f for f in files if f.is_sdist]
        wheels = [f for f in files if f.is_wheel]
        sdist = preferred_sdist(sdists)
        requires_python = sdist.requires_python if sdist else None
        for py, tgt in cells:
            if not recipe.build.selects(cibw_identifier(py, tgt)):
                cell(version, py, tgt, SKIP, "excluded by the recipe's build/skip selectors")
                continue
            failed: list[str] = []
            upstream_ok = None
            for wheel in _best(wheels, py, tgt):
                try:
                    problem = wheel_check(wheel, tgt) if wheel_check else None
                except Exception as exc:  # the hook's failure must not pass as "wheel is fine"
                    raise WheelCheckError(
                        f"architecture check of {wheel.filename} failed: {exc}"
                    ) from exc
                if problem is None:
                    upstream_ok = wheel
                    break
                failed.append(f"{wheel.filename}: {problem}")
            ours = _best(own_releases.get(version, ()), py, tgt)
            if upstream_ok:
                reason = "available upstream"
                if ours:  # upstream caught up: the wheel we serve is no longer needed
                    reason += f" (upstream caught up with our {ours[0].filename})"
                cell(version, py, tgt, UPSTREAM, reason, file=upstream_ok.filename)
                continue
            if ours:
                cell(version, py, tgt, OURS, "already built by us", file=ours[0].filename)
                continue
            if sdist is None:
                cell(version, py, tgt, SKIP, "no sdist to build from")
                continue
            if python_excluded(requires_python, py):
                cell(version, py, tgt, SKIP, f"requires-python {requires_python} excludes {py}")
                continue
            if failed:
                reason = f"upstream wheel fails the architecture check ({failed[0]})"
            else:
                reason = _why_build(wheels, py, tgt)
            if sdist.sha256 is None:
                cell(version, py, tgt, SKIP, f"the index gives no sha256 for {sdist.filename}")
                continue
            job = Job(
                project=name,
                version=shown[version],
                sdist_url=sdist.url,
                sdist_sha256=sdist.sha256,
                sdist_filename=sdist.filename,
                python=py,
                target=tgt,
                reason=reason,
                recipe_path=str(recipe.path),
                index=urljoin(page.url, ".."),
            )
            cell(version, py, tgt, BUILD, reason, job=job)
    if not live and not yanked:
        spec = str(recipe.versions) or "any"
        for py, tgt in cells:
            out.append(Decision(name, "", py, tgt, SKIP, f"no release on the index matches {spec}"))
    return out


def plan(
    recipes: Sequence[Recipe],
    upstream: IndexClient,
    own: IndexClient | None = None,
    *,
    pythons: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    wheel_check: WheelCheck | None = None,
    errors: Sequence[PlanError] = (),
    progress: Callable[[str], None] | None = None,
) -> Plan:
    """Plan loaded recipes. Upstream failures become PlanErrors; the other recipes are still planned."""
    names = [r.canonical_name for r in recipes]
    pages = upstream.projects(names, progress)
    own_pages = own.projects(names) if own else {}
    start = time.process_time()
    decisions: list[Decision] = []
    problems = list(errors)
    seen: dict[str, Path] = {}
    for recipe in recipes:
        if (first := seen.setdefault(recipe.canonical_name, recipe.path)) != recipe.path:
            problems.append(PlanError(str(recipe.path), f"the same project as {first}"))
            continue
        page = pages[recipe.canonical_name]
        if isinstance(page, UpstreamError):
            problems.append(PlanError(str(recipe.path), str(page)))
            continue
        mine = own_pages.get(recipe.canonical_name)
        if isinstance(mine, ProjectNotFound):
            mine = None  # nothing published by us yet
        elif isinstance(mine, UpstreamError):
            problems.append(PlanError(str(recipe.path), f"own index: {mine}"))
            mine = None
        try:
            decisions += decide(
                recipe, page, mine, pythons=pythons, targets=targets, wheel_check=wheel_check
            )
        except WheelCheckError as exc:
            problems.append(PlanError(str(recipe.path), str(exc)))
    return Plan(tuple(decisions), tuple(problems), time.process_time() - start)


def load_recipes(paths: Iterable[Path | str]) -> tuple[list[Recipe], list[PlanError]]:
    """Load every recipe under `paths`; a bad one becomes a PlanError and the rest load."""
    recipes, errors = [], []
    for path in recipe_files(paths):
        try:
            recipes.append(load_recipe(path))
        except RecipeError as exc:
            first = exc.problems[0]
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            errors.append(PlanError(str(path), f"{first}{more}"))
    return recipes, errors
