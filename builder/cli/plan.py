"""`wheelfarm plan`: which arm64 wheels are missing, and why; `-r FILE` does it for a team's pins."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from builder.cli.config import farm_config
from builder.cli.minutes import minute_options, model_from
from builder.common.farmconfig import FarmConfig
from builder.common.targets import TargetError, parse_python, parse_target
from builder.common.upstream import IndexClient, UpstreamError
from builder.plan.estimate import estimate
from builder.plan.planner import Plan, PlanError, WheelCheck, load_recipes, plan


def _load_hook(spec: str | None) -> WheelCheck | None:
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    try:
        hook = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise click.ClickException(f"--wheel-check {spec}: {exc}") from None
    if not callable(hook):
        raise click.ClickException(f"--wheel-check {spec}: not callable")
    return hook


def _validate(pythons: tuple[str, ...], targets: tuple[str, ...]) -> None:
    for py in pythons:
        try:
            parse_python(py)
        except TargetError as exc:
            raise click.BadParameter(f"{py!r}: {exc}", param_hint="--python") from None
    for tgt in targets:
        try:
            parse_target(tgt)
        except TargetError as exc:
            raise click.BadParameter(f"{tgt!r}: {exc}", param_hint="--target") from None


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[str], None] | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty() or total < 2:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda _name: bar.advance(task)


def _own_index(cfg: FarmConfig, timeout: float) -> str | None:
    """The own index's simple URL. One the configuration names (not an option) that does not
    answer is a warning, and the plan goes on without it: the farm may simply not be running."""
    url = cfg.own_simple_url
    if url is None or cfg.source("own-index").startswith("--"):
        return url
    import httpx

    try:
        httpx.get(url, timeout=min(timeout, 5.0)).raise_for_status()
    except httpx.HTTPError as exc:
        click.echo(
            f"warning: the farm's own index {url} (own-index from {cfg.source('own-index')}) does "
            f"not answer ({exc}); planning without it",
            err=True,
        )
        return None
    return url


def _clients(index: str | None, own_index: str | None, refresh: bool, timeout: float):
    try:
        up = IndexClient(index, refresh=refresh, timeout=timeout)
        own = IndexClient(own_index, refresh=refresh, timeout=timeout) if own_index else None
    except UpstreamError as exc:
        raise click.ClickException(str(exc)) from None
    return up, own


def _print_plan(result: Plan) -> None:
    rows = [
        (d.project, d.version or "-", d.python, d.target, d.status, d.reason, d.file or "")
        for d in result.decisions
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(5)]
    for r in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True))
        click.echo(f"{head}  {r[5]}" + (f" ({r[6]})" if r[6] else ""))


@click.command("plan")
@click.argument("recipes", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--index",
    "--index-url",
    "index",
    metavar="URL",
    help="Upstream index: a URL, 'pypi' or 'pip' (pip's configured index) "
    "[default: the farm configuration's upstream, else pypi].",
)
@click.option(
    "--own-index",
    metavar="URL",
    help="wheelfarm's own index: wheels published there are not planned again "
    "[default: the farm configuration's own-index, or $WHEELFARM_OWN_INDEX].",
)
@click.option(
    "--python",
    "pythons",
    multiple=True,
    metavar="X.Y",
    help="Only these Pythons (repeatable); with -r, the Pythons to check "
    "[default: the farm configuration's pythons, else this one].",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="TAG",
    help="Only these targets (repeatable); with -r, the targets to check "
    "[default: the farm configuration's targets].",
)
@click.option(
    "-r",
    "--requirements",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A pinned requirements file or uv.lock / pylock.toml / poetry.lock.",
)
@click.option(
    "--recipes-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="With -r: where existing recipes live [default: the farm configuration's recipes].",
)
@click.option(
    "--write-recipes",
    type=click.Path(path_type=Path, file_okay=False),
    help="With -r: write starting recipes for pins that lack wheels and a recipe.",
)
@click.option(
    "--build",
    "explore",
    is_flag=True,
    help="With --write-recipes: build each written recipe (first Python and target), adding the "
    "native libraries it was missing and testing its extension modules (as recipe new --build).",
)
@click.option(
    "--wheel-check",
    metavar="MODULE:FUNC",
    help="Callable(DistFile, target) -> reason|None that checks an upstream wheel's binaries.",
)
@click.option(
    "--check-upstream",
    is_flag=True,
    help="Download the upstream wheels that would satisfy a cell and run the wheel checker on them: "
    "a wheel that fails is planned for rebuild (shorthand for "
    "--wheel-check builder.check.upstream_gate:upstream_wheel_problem).",
)
@click.option("--refresh", is_flag=True, help="Revalidate cached index pages even if still fresh.")
@click.option("--timeout", type=float, default=15.0, show_default=True, help="Seconds per request.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the plan as JSON: include (jobs, a GitHub Actions matrix), available, skipped, "
    "errors, estimate (runner minutes).",
)
@minute_options
def plan_command(
    recipes: tuple[Path, ...],
    index: str | None,
    own_index: str | None,
    pythons: tuple[str, ...],
    targets: tuple[str, ...],
    requirements: Path | None,
    recipes_dir: Path | None,
    write_recipes: Path | None,
    explore: bool,
    wheel_check: str | None,
    check_upstream: bool,
    refresh: bool,
    timeout: float,
    as_json: bool,
    **minutes: float,
) -> None:
    """Plan the wheels to build: for every recipe, version, Python and target, whether a wheel is
    available upstream, already built by us, skipped (and why) or to build (and why).

    RECIPES are files or folders (default: recipes/). A bad recipe or an unreachable project is
    reported on stderr and the others are still planned; the exit status is then 1.
    """
    _validate(pythons, targets)
    model = model_from(minutes)
    cfg = farm_config(
        upstream=("--index", index),
        own_index=("--own-index", own_index),
        recipes=("--recipes-dir", recipes_dir),
    )
    index = cfg.upstream
    own_index = _own_index(cfg, timeout)
    if requirements:
        cfg = cfg.with_options(pythons=("--python", pythons), targets=("--target", targets))
        _plan_requirements(
            requirements, index, own_index, cfg.pythons, cfg.targets, cfg.recipes,
            write_recipes, refresh, timeout, as_json, explore,
        )  # fmt: skip
        return
    if write_recipes or explore:
        raise click.UsageError("--write-recipes and --build go with -r/--requirements")
    if check_upstream:
        if wheel_check:
            raise click.UsageError(
                "--check-upstream and --wheel-check are two ways to say one thing"
            )
        wheel_check = "builder.check.upstream_gate:upstream_wheel_problem"
    hook = _load_hook(wheel_check)
    recipes = recipes or (cfg.recipes,)
    loaded, errors = load_recipes(recipes)
    if not loaded and not errors:
        raise click.ClickException("no recipes found in " + ", ".join(map(str, recipes)))
    up, own = _clients(index, own_index, refresh, timeout)
    with up, _progress(len(loaded), "asking the index") as progress:
        result = plan(
            loaded,
            up,
            own,
            pythons=pythons or None,
            targets=targets or None,
            wheel_check=hook,
            errors=errors,
            progress=progress,
        )
        if own:
            own.close()
    natives = {r.canonical_name: len(r.native) for r in loaded}
    cost = estimate((d.job for d in result.decisions if d.job), natives, model)
    if as_json:
        doc = result.to_dict() | {"estimate": cost, "http": up.stats.to_dict()}
        click.echo(json.dumps(doc, indent=2))
    else:
        _print_plan(result)
        s = result.to_dict()["summary"]
        click.echo(
            f"{s['build']} to build, {s['upstream']} available upstream, {s['ours']} built by us, "
            f"{s['skip']} skipped, {s['errors']} error(s); {up.stats.requests} HTTP request(s); "
            f"about {cost['runner_minutes']:g} runner minutes in {cost['runs']} cibuildwheel run(s)",
            err=True,
        )
    for err in result.errors:
        click.echo(f"error: {err}", err=True)
    if result.errors:
        raise SystemExit(1)


def _plan_requirements(
    path: Path,
    index: str | None,
    own_index: str | None,
    pythons: tuple[str, ...],
    targets: tuple[str, ...],
    recipes_dir: Path,
    write_recipes: Path | None,
    refresh: bool,
    timeout: float,
    as_json: bool,
    explore: bool = False,
) -> None:
    from builder.plan.pins import PinsError, plan_pins, read_pins

    if not targets:
        raise click.UsageError(
            "-r needs at least one --target (e.g. --target manylinux_2_28_aarch64), or "
            "targets in the farm configuration (wheelfarm init)"
        )
    pythons = pythons or (f"{sys.version_info.major}.{sys.version_info.minor}",)
    try:
        pins, notes = read_pins(path)
    except PinsError as exc:
        raise click.ClickException(str(exc)) from None
    up, own = _clients(index, own_index, refresh, timeout)
    with up:
        reports, errors = plan_pins(
            pins, up, pythons=pythons, targets=targets, recipes_dir=recipes_dir, own=own
        )
        written: list[Path] = []
        if write_recipes:
            from builder.plan.starting_recipe import RecipeNewError, write_recipe

            for report in reports:
                if report.missing and report.recipe is None:
                    try:
                        written.append(
                            write_recipe(
                                report.pin.name, up, write_recipes,
                                pythons=pythons, targets=targets, version=report.pin.version,
                            )
                        )  # fmt: skip
                    except (RecipeNewError, UpstreamError) as exc:
                        errors += (PlanError(report.pin.source, str(exc)),)
    if own:
        own.close()
    built: list[dict[str, object]] = []
    if explore and written:
        from builder.build.explore import explore_recipe

        for p in written:
            found = explore_recipe(p, python=pythons[0], target=targets[0], index=index)
            r = found.result
            built.append(
                {"recipe": str(p), "status": str(r.status), "error": r.error,
                 "natives": found.natives, "extension_modules": found.extension_modules}
            )  # fmt: skip
            if not r.ok:
                errors += (PlanError(str(p), f"built as written: {r.step}: {r.error}"),)
    if as_json:
        doc = {
            "pins": [r.to_dict() for r in reports],
            "notes": notes,
            "written": [str(p) for p in written],
            "built": built,
            "errors": [e.to_dict() for e in errors],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for note in notes:
            click.echo(f"note: {note}", err=True)
        for r in reports:
            if not r.missing:
                continue
            recipe = f"recipe {r.recipe}" if r.recipe else "no recipe"
            cells = ", ".join(f"{d.python}/{d.target}" for d in r.missing)
            click.echo(f"{r.pin.name}=={r.pin.version}: no wheel for {cells}; {recipe}")
        lacking = sum(1 for r in reports if r.missing)
        click.echo(f"{len(reports)} pin(s), {lacking} lack wheels for the targets", err=True)
        for p in written:
            click.echo(f"wrote {p}", err=True)
        for b in built:
            click.echo(f"built {b['recipe']}: {b['status']}", err=True)
    for err in errors:
        click.echo(f"error: {err}", err=True)
    if errors:
        raise SystemExit(1)
