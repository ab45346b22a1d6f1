"""`wheelfarm check`: a thin shell over builder.check.check_files."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from packaging.utils import parse_wheel_filename

from builder.check.core import check_files
from builder.check.report import Report, exit_code, render, to_json

if TYPE_CHECKING:
    from builder.build.parity import ParityReport
    from builder.recipes.recipe import Recipe


@click.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--index",
    "index_url",
    metavar="URL",
    help="Check what an index holds instead of local files: ARGS are PROJECT or PROJECT==VERSION "
    "(default: the newest release). URL may be 'pypi' or 'pip' (pip's configured index).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of tables.")
@click.option(
    "--parity",
    is_flag=True,
    help="Compare each wheel with upstream's wheel of the same release for another platform "
    "(found on --index, default PyPI): inventory, and the recipe's [parity] probe (and with "
    "[parity] tests its test-command) run natively with upstream's wheel and under qemu with ours.",
)
@click.option(
    "--recipe",
    "recipe_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="With --parity: the recipe whose [parity] probe and accepted differences apply "
    "(default: recipes/<project>.toml when it exists).",
)
@click.option(
    "--upstream",
    "upstream_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="With --parity: compare with this wheel file instead of looking on the index.",
)
@click.option(
    "--sdist",
    "sdist_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="With --parity and a recipe with [parity] tests: the sdist whose tests the recipe's "
    "test-command runs ({project}); default: upstream's sdist of the release on the index.",
)
def check(
    paths: tuple[str, ...],
    index_url: str | None,
    as_json: bool,
    parity: bool,
    recipe_path: Path | None,
    upstream_path: Path | None,
    sdist_path: Path | None,
) -> None:
    """Prove that wheels are what their tags say.

    PATHS are wheel files or folders of wheels (or, with --index, projects). Exit status: 0 all good,
    1 a finding, 2 a wheel or index could not be read.
    """
    if parity:
        sys.exit(run_parity(paths, index_url, recipe_path, upstream_path, as_json, sdist_path))
    if recipe_path or upstream_path or sdist_path:
        raise click.UsageError("--recipe, --upstream and --sdist go with --parity")
    # auditwheel logs its own guesses (e.g. the host's musl version) as warnings; the report says it all.
    logging.getLogger("auditwheel").setLevel(logging.ERROR)

    def run() -> list[Report]:
        return check_files(paths) if index_url is None else _check_index(index_url, paths)

    if as_json:  # machines read this path; it leaves rich unimported (a tenth of the start-up)
        reports = run()
        click.echo(to_json(reports))
    else:
        from rich.console import Console

        console = Console(stderr=False)
        with console.status("checking wheels", spinner="dots"):
            reports = run()
        render(reports, console)
    sys.exit(exit_code(reports))


def _check_index(index_url: str, specs: tuple[str, ...]) -> list[Report]:
    """Download (sha256-verified, cached) and check the wheels an index holds for each project."""
    from packaging.requirements import InvalidRequirement, Requirement

    from builder.common.upstream import IndexClient, UpstreamError

    reports: list[Report] = []
    with IndexClient(index_url) as client:
        for spec in specs:
            try:
                req = Requirement(spec)
            except InvalidRequirement as exc:
                raise click.UsageError(
                    f"{spec!r} is not PROJECT or PROJECT==VERSION: {exc}"
                ) from exc
            try:
                releases = client.project(req.name).releases()
            except UpstreamError as exc:
                reports.append(Report(wheel=spec, error=str(exc)))
                continue
            if req.specifier:
                versions = [v for v in releases if req.specifier.contains(v, prereleases=True)]
            else:  # the newest final release, else the newest of all
                finals = [v for v in releases if not v.is_prerelease]
                versions = [max(finals or releases)] if releases else []
            wheels = [f for v in versions for f in releases[v] if f.is_wheel and not f.yanked]
            if not wheels:
                reports.append(
                    Report(wheel=spec, error=f"no wheels for {spec} on {client.index_url}")
                )
                continue
            for file in wheels:
                try:
                    local = client.download(file)  # sha256-verified, cached by hash
                except UpstreamError as exc:
                    reports.append(Report(wheel=file.url, error=str(exc)))
                    continue
                reports += [replace(r, wheel=file.url) for r in check_files([local])]
    return reports


# --- check --parity ------------------------------------------------------------------------------


def _wheels(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.glob("*.whl"))
        elif p.is_file() and p.name.endswith(".whl"):
            out.append(p)
        else:
            raise click.UsageError(f"{p}: not a wheel file or a folder of wheels")
    return out


def _recipe_for(wheel: Path, explicit: Path | None) -> Recipe | None:
    from builder.recipes.recipe import RecipeError, load_recipe

    name = parse_wheel_filename(wheel.name)[0]
    path = explicit or Path("recipes") / f"{name}.toml"
    if not path.exists():
        return None
    try:
        return load_recipe(path)
    except RecipeError as exc:
        raise click.ClickException(str(exc)) from None


def run_parity(
    paths: Sequence[str],
    index_url: str | None,
    recipe_path: Path | None,
    upstream: Path | None,
    as_json: bool,
    sdist: Path | None = None,
) -> int:
    """Compare every wheel; print the reports; 0 when all match (or accept), 1 when one differs."""
    from builder.build.parity import compare_with_upstream
    from builder.build.pipeline import default_log_dir
    from builder.common.buildlog import BuildLog
    from builder.common.targets import parse_target

    reports: list[ParityReport] = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    for wheel in _wheels(paths):
        recipe = _recipe_for(wheel, recipe_path)
        platforms = [t.platform for t in parse_wheel_filename(wheel.name)[3]]
        target = next((p for p in platforms if p.startswith(("manylinux", "musllinux"))), None)
        log_path = default_log_dir() / "parity" / f"{wheel.stem}-{stamp}.log"
        with BuildLog(log_path) as log:
            report = compare_with_upstream(
                wheel,
                log=log,
                spec=recipe.parity if recipe else None,
                requires=recipe.test.test_requires if recipe else (),
                platforms=parse_target(target).platforms if target else None,
                index_url=index_url,
                upstream=upstream,
                test_command=recipe.test.test_command if recipe else "",
                sdist=sdist,
            )
        reports.append(report)
        if not as_json:
            click.echo(f"{'ok' if report.ok else 'DIFFERS'} {wheel.name}: {report.summary()}")
            for f in report.findings:
                click.echo(f"  {f.rule} {f.severity}: {f.message}")
            click.echo(f"  log: {log_path}")
    if as_json:
        click.echo(json.dumps({"version": 1, "parity": [r.to_dict() for r in reports]}, indent=2))
    return 0 if all(r.ok for r in reports) else 1
