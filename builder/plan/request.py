"""Jobs for one recipe asked for by hand (`wheelfarm build RECIPE`), or read back from a saved plan.

The nightly plans every cell against the indexes (builder.plan.planner); a person building one recipe
names the version, Pythons and targets, or a local sdist, and gets the same `Job` values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from packaging.version import InvalidVersion, Version

from builder.common.fetch import sha256_file
from builder.common.targets import cibw_identifier
from builder.common.upstream import IndexClient, UpstreamError
from builder.plan.planner import Job, preferred_sdist, select_versions
from builder.recipes.recipe import Recipe, RecipeError, load_recipe


class RequestError(ValueError):
    """The request cannot become jobs; the message names the recipe, option or URL and why."""


def jobs_from_plan(path: Path) -> list[Job]:
    """The jobs of a saved plan (`wheelfarm plan --json` output, or its `include` list)."""
    try:
        doc = json.loads(path.read_text())
        entries = doc["include"] if isinstance(doc, dict) else doc
        return [Job.from_dict(e) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RequestError(f"{path}: not a plan (`wheelfarm plan --json`): {exc}") from None


def jobs_for_recipe(
    recipe_path: Path,
    *,
    version: str | None = None,
    pythons: Sequence[str] = (),
    targets: Sequence[str] = (),
    sdist: str | None = None,
    sha256: str | None = None,
    index: str | None = None,
) -> list[Job]:
    """One job per selected (Python, target) of the recipe: for `sdist` (a path or URL; a URL needs
    `sha256` and `version`), else for the upstream sdist of `version` or the newest planned release."""
    try:
        recipe = load_recipe(recipe_path)
    except RecipeError as exc:
        raise RequestError(str(exc)) from None
    pythons = tuple(pythons) or recipe.pythons
    targets = tuple(targets) or recipe.targets  # the cross backend builds Linux and macOS targets
    if sdist:
        local = Path(sdist)
        if not sha256:
            if not local.is_file():
                raise RequestError(f"--sdist {sdist}: a URL needs --sha256")
            sha256 = sha256_file(local)
        url, filename = sdist, Path(sdist.split("#")[0]).name
        if not version:
            raise RequestError("--sdist needs --version")
    else:
        url, filename, sha256, version = upstream_sdist(recipe, version, index)
    try:
        Version(version)
    except InvalidVersion:
        raise RequestError(f"--version {version!r} is not a PEP 440 version") from None
    jobs = [
        Job(recipe.name, version, url, sha256, filename, py, tgt, "requested", str(recipe_path))
        for py in pythons
        for tgt in targets
        if recipe.build.selects(cibw_identifier(py, tgt))
    ]
    if not jobs:
        raise RequestError(f"{recipe_path}: build/skip select no Python x target given")
    return jobs


def upstream_sdist(
    recipe: Recipe, version: str | None, index: str | None
) -> tuple[str, str, str, str]:
    """(url, filename, sha256, version) of the sdist the planner would build: `version`, else the
    newest release the recipe selects; the `.tar.gz` when a release has several."""
    try:
        with IndexClient(index) as client:
            page = client.project(recipe.name)
    except UpstreamError as exc:
        raise RequestError(str(exc)) from None
    if version:
        try:
            wanted = Version(version)
        except InvalidVersion:
            raise RequestError(f"--version {version!r} is not a PEP 440 version") from None
    else:
        live, _ = select_versions(recipe, page)
        if not live:
            raise RequestError(f"{recipe.path}: no release upstream matches {recipe.versions}")
        wanted = live[0]
    sdist = preferred_sdist(page.releases().get(wanted, []))
    if sdist is None:
        raise RequestError(f"{recipe.name} {wanted}: no sdist on {client.index_url}")
    if not sdist.sha256:
        raise RequestError(f"{sdist.url}: the index gives no sha256 for it")
    return sdist.url, sdist.filename, sdist.sha256, str(wanted)
