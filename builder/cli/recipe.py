"""`wheelfarm recipe lint|new`: check recipes against the schema, write a starting recipe."""

from __future__ import annotations

import json
from pathlib import Path

import click

from builder.recipes import recipe as recipes


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
    from builder.cli.config import farm_config

    paths = paths or (farm_config().recipes,)
    results = recipes.lint(paths)
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
        raise click.ClickException("no recipes found in " + ", ".join(map(str, paths)))
    if bad:
        raise SystemExit(1)


@recipe.command()
@click.argument("name")
@click.option(
    "--index",
    "--index-url",
    "index",
    metavar="URL",
    help="Upstream index: a URL, 'pypi' or 'pip' [default: the farm configuration's upstream].",
)
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write it [default: the farm configuration's recipes folder].",
)
@click.option(
    "--python",
    "pythons",
    multiple=True,
    metavar="X.Y",
    help="Pythons [default: the farm configuration's pythons, else 3.9-3.13 that requires-python "
    "allows].",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="TAG",
    help="Targets [default: the farm configuration's targets, else manylinux_2_17_aarch64].",
)
@click.option(
    "--version", "version", metavar="V", help="Pin one version instead of the newest releases."
)
@click.option(
    "--latest",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Build the newest N releases.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing recipe.")
@click.option(
    "--build",
    "explore",
    is_flag=True,
    help="Build it (first Python and target): add the native libraries the build was missing "
    "(found in Debian's Contents index) and test every extension module of the wheel.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
def new(
    name: str,
    index: str | None,
    out_dir: Path | None,
    pythons: tuple[str, ...],
    targets: tuple[str, ...],
    version: str | None,
    latest: int,
    force: bool,
    explore: bool,
    as_json: bool,
) -> None:
    """Write a starting recipe for NAME from the upstream index and its newest sdist."""
    from builder.cli.config import farm_config
    from builder.common.upstream import IndexClient, UpstreamError
    from builder.plan.starting_recipe import DEFAULT_TARGETS, RecipeNewError, write_recipe

    cfg = farm_config(
        upstream=("--index", index),
        recipes=("--dir", out_dir),
        pythons=("--python", pythons),
        targets=("--target", targets),
    )
    try:
        with IndexClient(cfg.upstream) as client:
            path = write_recipe(
                name,
                client,
                cfg.recipes,
                pythons=cfg.pythons or None,
                targets=cfg.targets or DEFAULT_TARGETS,
                version=version,
                latest=latest,
                force=force,
                note=lambda msg: click.echo(msg, err=True),
            )
    except (RecipeNewError, UpstreamError) as exc:
        raise click.ClickException(str(exc)) from None
    if not explore:
        if as_json:
            click.echo(json.dumps({"recipe": str(path)}))
        else:
            click.echo(str(path))
        return
    import sys

    from rich.console import Console

    from builder.build.explore import explore_recipe

    err = Console(stderr=True)
    with err.status("building") as status:
        try:
            found = explore_recipe(
                path,
                python=(pythons or ("3.11",))[0],
                target=(targets or DEFAULT_TARGETS)[0],
                index=index,
                say=status.update,
            )
        except RecipeNewError as exc:
            raise click.ClickException(str(exc)) from None
    r = found.result
    report = {
        "recipe": str(path),
        "status": str(r.status),
        "error": r.error,
        "log": str(r.log),
        "wheel": str(r.wheel) if r.wheel else None,
        "sdist_sha256": r.sdist_sha256,
        "natives": found.natives,
        "extension_modules": found.extension_modules,
        "unresolved": [f"{m.kind} {m.name}" for m in found.unresolved],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(str(path))
        for entry in found.natives:
            click.echo(f"  native: {entry['name']} ({entry['source']}, {entry['build-system']})")
        for module in found.extension_modules:
            click.echo(f"  extension module tested: {module}")
        for m in found.unresolved:
            where = f" (named in {m.origin})" if m.origin else ""
            click.echo(f"  not found in Debian: {m.kind} {m.name}{where}")
        click.echo(f"  {r.status}" + (f": {r.step}: {r.error} (log: {r.log})" if r.error else ""))
    if not r.ok:
        sys.exit(1)


@recipe.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--index", help="Upstream index: 'pypi', 'pip' or a URL [default: the farm configuration's]."
)
@click.option(
    "--own-index", metavar="URL", help="wheelfarm's own index [default: the farm configuration's]."
)
@click.option("--json", "as_json", is_flag=True, help="Print one entry per recipe as JSON.")
def status(
    paths: tuple[Path, ...], index: str | None, own_index: str | None, as_json: bool
) -> None:
    """Which recipes are still needed: a recipe whose every cell upstream now covers is not.

    Exit status 0; 1 when a recipe could not be planned.
    """
    from builder.cli.config import farm_config
    from builder.common.upstream import IndexClient
    from builder.plan.planner import BUILD, OURS, UPSTREAM, load_recipes, plan

    cfg = farm_config(upstream=("--index", index), own_index=("--own-index", own_index))
    loaded, errors = load_recipes(paths or [cfg.recipes])
    with IndexClient(cfg.upstream) as up:
        own = IndexClient(cfg.own_simple_url) if cfg.own_simple_url else None
        result = plan(loaded, up, own, errors=errors)
        if own:
            own.close()
    rows = []
    for r in loaded:
        cells = [d for d in result.decisions if d.project == r.canonical_name]
        counts = {s: sum(d.status == s for d in cells) for s in (BUILD, OURS, UPSTREAM)}
        caught_up = [d for d in cells if d.status == UPSTREAM and "caught up" in d.reason]
        needed = bool(counts[BUILD] or counts[OURS]) or not counts[UPSTREAM]
        rows.append(
            {
                "recipe": str(r.path),
                "project": r.canonical_name,
                "needed": needed,
                "cells": counts,
                "caught_up": [d.file for d in caught_up],
            }
        )
    if as_json:
        doc = {"recipes": rows, "errors": [e.to_dict() for e in result.errors]}
        click.echo(json.dumps(doc, indent=2))
    else:
        for row in rows:
            c = row["cells"]
            verdict = "needed" if row["needed"] else "no longer needed: upstream covers every cell"
            click.echo(
                f"{row['recipe']}: {verdict} "
                f"(to build {c[BUILD]}, ours {c[OURS]}, upstream {c[UPSTREAM]})"
            )
        for e in result.errors:
            click.echo(f"error: {e}", err=True)
    if result.errors:
        raise SystemExit(1)
