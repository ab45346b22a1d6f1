"""`wheelfarm recipe lint|new`: check recipes against the schema, write a starting recipe."""

from __future__ import annotations

import json
from pathlib import Path

import click

from builder import recipes


@click.group()
def recipe() -> None:
    """Work with recipes (recipes/<normalized-name>.toml)."""


@recipe.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def lint(paths: tuple[Path, ...], as_json: bool) -> None:
    """Check recipes (files or folders; default recipes/): unknown keys, types, specifiers, tags, names.

    Every problem of every file is reported as FILE: KEY: MESSAGE; the exit status is 1 if any.
    """
    results = recipes.lint(paths or [Path("recipes")])
    bad = [r for r in results if not r.ok]
    if as_json:
        doc = {"ok": not bad, "recipes": [r.to_dict() for r in results]}
        click.echo(json.dumps(doc, indent=2))
    else:
        for r in results:
            for problem in r.problems:
                click.echo(str(problem))
        errors = sum(len(r.problems) for r in bad)
        summary = f"{len(results)} recipe(s) checked, {len(bad)} with {errors} error(s)"
        click.echo(summary if bad else f"{len(results)} recipe(s) checked, all clean", err=True)
    if not results:
        raise click.ClickException(
            "no recipes found in " + ", ".join(map(str, paths or ["recipes"]))
        )
    if bad:
        raise SystemExit(1)
