"""`wheelfarm check --parity`: each wheel against upstream's wheel of the same release."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
from packaging.utils import parse_wheel_filename

from builder.backends import BuildLog
from builder.recipes import Recipe, RecipeError, load_recipe
from builder.targets import parse_target

from .parity_run import ParityReport, compare_with_upstream


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
) -> int:
    """Compare every wheel; print the reports; 0 when all match (or accept), 1 when one differs."""
    from builder.build import default_log_dir

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
