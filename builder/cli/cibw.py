"""`wheelfarm cibw-options` and `wheelfarm cibw-build`: a plan's jobs as cibuildwheel runs.

The nightly workflow calls `cibw-options --matrix` to fan the plan out over native runners, and on each
runner `cibw-build --run ID` (which verifies the sdist and runs cibuildwheel with the translated
options); `cibw-options --run ID` prints the same options for a person or for `$GITHUB_ENV`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from builder.build.backends.cibuildwheel import CibwError, CibwRun, cibuildwheel_runs, github_env
from builder.common.targets import TargetError
from builder.plan.planner import Job
from builder.recipes.recipe import RecipeError, load_recipe


def load_runs(plan_file: Path) -> list[CibwRun]:
    """Every cibuildwheel run for the jobs in a `wheelfarm plan --json` file."""
    try:
        doc = json.loads(plan_file.read_text())
        jobs = [Job.from_dict(entry) for entry in doc["include"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"{plan_file}: not a wheelfarm plan: {exc}") from None
    by_recipe: dict[str, list[Job]] = {}
    for job in jobs:
        by_recipe.setdefault(job.recipe_path, []).append(job)
    runs: list[CibwRun] = []
    for recipe_path, group in sorted(by_recipe.items()):
        try:
            recipe = load_recipe(recipe_path)
            runs.extend(cibuildwheel_runs(recipe, group))
        except (RecipeError, CibwError, TargetError, OSError) as exc:
            raise click.ClickException(f"{recipe_path}: {exc}") from None
    return runs


def _pick(runs: list[CibwRun], run_id: str) -> CibwRun:
    for run in runs:
        if run.id == run_id:
            return run
    known = ", ".join(r.id for r in runs) or "none"
    raise click.ClickException(f"no cibuildwheel run {run_id!r} in the plan (runs: {known})")


_plan_option = click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="A `wheelfarm plan --json` file.",
)


@click.command("cibw-options")
@_plan_option
@click.option("--matrix", is_flag=True, help="Print the runs as a GitHub Actions matrix (JSON).")
@click.option("--run", "run_id", metavar="ID", help="Print the options of one run.")
@click.option("--json", "as_json", is_flag=True, help="With --run: the run as JSON.")
def cibw_options_command(plan_file: Path, matrix: bool, run_id: str | None, as_json: bool) -> None:
    """Translate a plan's jobs and their recipes into cibuildwheel runs and options.

    With --matrix, one entry per run (id, runner, platform, archs, identifiers, sdist); with --run ID,
    that run's environment (CIBW_BUILD, CIBW_ARCHS, images, ...) in the form `$GITHUB_ENV` takes.
    """
    runs = load_runs(plan_file)
    if matrix == bool(run_id):
        raise click.UsageError("give exactly one of --matrix and --run ID")
    if matrix:
        click.echo(json.dumps({"include": [r.matrix_entry() for r in runs]}))
        return
    run = _pick(runs, run_id or "")
    for note in run.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=2))
    else:
        click.echo(github_env(run.env), nl=False)


@click.command("cibw-build")
@_plan_option
@click.option("--run", "run_id", metavar="ID", required=True, help="The run to build.")
@click.option(
    "--sdist",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The run's sdist (its sha256 must match the plan).",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("wheelhouse"),
    show_default=True,
)
@click.option(
    "--log", type=click.Path(path_type=Path, dir_okay=False), help="Write the build log here."
)
def cibw_build_command(
    plan_file: Path, run_id: str, sdist: Path, output_dir: Path, log: Path | None
) -> None:
    """Build one run of the plan with cibuildwheel (on a native arm64 runner) and list the wheels."""
    from builder.build.backends.cibuildwheel import run_cibuildwheel

    run = _pick(load_runs(plan_file), run_id)
    for note in run.notes:
        click.echo(f"note: {note}", err=True)
    try:
        wheels = run_cibuildwheel(run, sdist, output_dir, log=log)
    except CibwError as exc:
        raise click.ClickException(str(exc)) from None
    for wheel in wheels:
        click.echo(wheel)
