"""`wheelfarm fanout`: the nightly's build matrix, cut into shards within GitHub Actions' limits."""

from __future__ import annotations

import json
from pathlib import Path

import click

from builder.cli.cibw import load_runs, recipes_natives
from builder.cli.minutes import minute_options, model_from
from builder.common.atomic import atomic_write_text
from builder.farm.shards import MATRIX_MAX_JOBS, Limits, ShardError, shard_runs


@click.command("fanout")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="A `wheelfarm plan --json` file.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Write the shards (which runs each matrix job builds) here: shards.json.",
)
@click.option(
    "--budget-minutes",
    type=click.FloatRange(min=0),
    envvar="WHEELFARM_RUNNER_MINUTES",
    help="Runner minutes one night may spend; the rest is deferred to the next night.",
)
@click.option(
    "--shard-minutes",
    type=click.FloatRange(min=1, max=360),
    default=300.0,
    show_default=True,
    help="Estimated minutes per matrix job (a hosted job stops at 360).",
)
@click.option(
    "--max-shards",
    type=click.IntRange(min=1, max=MATRIX_MAX_JOBS),
    default=MATRIX_MAX_JOBS,
    show_default=True,
    help="Matrix jobs at most (GitHub: 256 per matrix).",
)
@click.option(
    "--github-output",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="GITHUB_OUTPUT",
    help="Append `matrix=` and `count=` here (default: $GITHUB_OUTPUT when set).",
)
@click.option("--json", "as_json", is_flag=True, help="Print shards.json's content.")
@minute_options
def fanout_command(
    plan_file: Path,
    out: Path,
    budget_minutes: float | None,
    shard_minutes: float,
    max_shards: int,
    github_output: Path | None,
    as_json: bool,
    **minutes: float,
) -> None:
    """Pack a plan's cibuildwheel runs into at most 256 matrix jobs, each under the job time limit,
    all within a runner-minute budget; write shards.json and the matrix (a small job output)."""
    runs, recipes = load_runs(plan_file, with_recipes=True)
    try:
        limits = Limits(max_shards, shard_minutes, budget_minutes)
        sharding = shard_runs(runs, recipes_natives(recipes), limits, model_from(minutes))
        output = sharding.github_output()
    except ShardError as exc:
        raise click.ClickException(str(exc)) from None
    doc = sharding.to_dict()
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as fh:
            fh.write(output)
    s = doc["summary"]
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(json.dumps(sharding.matrix()))
    click.echo(
        f"{s['jobs']} wheel(s) in {s['runs']} run(s) over {s['shards']} matrix job(s), about "
        f"{s['runner_minutes']:g} runner minutes; {s['deferred_jobs']} wheel(s) in "
        f"{s['deferred_runs']} run(s) deferred",
        err=True,
    )
    for entry in doc["deferred"][:20]:
        click.echo(f"deferred: {entry['run']}: {entry['why']}", err=True)
