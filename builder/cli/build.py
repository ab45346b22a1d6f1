"""`wheelfarm build` and `wheelfarm doctor`: thin shells over builder.build.pipeline and builder.build.doctor."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from builder.build.pipeline import BuildResult, build_jobs
from builder.cli.progress import print_rows, stderr_console
from builder.common.outcome import Outcome

STATUS_STYLE = {
    Outcome.TESTED: "green",
    Outcome.CHECKED_NOT_RUN: "yellow",
    Outcome.BUILT: "cyan",
    Outcome.FAILED: "red",
}


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator:
    """A rich progress bar (stderr) over the jobs, with the current step as its description."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    if quiet:
        yield None, None
        return
    err = stderr_console()
    if not err.is_terminal:
        # A file or a pipe: one plain line per step change, nothing redrawn.
        def line(message: str) -> None:
            err.out(f"{time.strftime('%H:%M:%S')} {message}", highlight=False)

        def finished(result: BuildResult) -> None:
            line(
                f"{result.status} {result.project} {result.version} cp{result.python} "
                f"{result.target} ({result.duration:.1f}s)"
                + (f": {result.error}" if result.error else "")
            )

        yield line, finished
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("building", total=total)

        def step(message: str) -> None:
            if message.startswith("warning: "):  # shown when found, and again in the summary
                bar.console.print(Text("warning: ", style="yellow") + message[9:])
            else:
                bar.update(task, description=message)

        def done(result: BuildResult) -> None:
            style = STATUS_STYLE.get(result.status, "white")
            bar.console.print(
                Text(str(result.status), style=style)
                + f" {result.project} {result.version} cp{result.python} {result.target} "
                f"({result.duration:.1f}s)" + (f": {result.error}" if result.error else "")
            )
            bar.advance(task)

        yield step, done


def _print_results(results: list[BuildResult], console: Console) -> None:
    """The summary (plain rows when not a terminal: nothing cut), then each warning again."""
    rows = [
        (
            r.project,
            r.version,
            r.python,
            r.target,
            str(r.status),
            r.wheel.name if r.wheel else f"{r.step} (see below)",
        )
        for r in results
    ]
    styles = [STATUS_STYLE.get(r.status, "") for r in results]
    headers = ("project", "version", "python", "target", "status", "wheel / error")
    print_rows(console, headers, rows, styles)
    for r in results:
        for w in dict.fromkeys(r.warnings):
            console.print(
                Text("warning: ", style="yellow")
                + f"{r.project} {r.version} cp{r.python} {r.target}: {w}",
                soft_wrap=not console.is_terminal,
            )


@click.command("build")
@click.argument("recipe", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, path_type=Path),
    help="Build every job of a plan (`wheelfarm plan --json` output).",
)
@click.option("--version", help="The release to build (default: the newest the recipe selects).")
@click.option("--python", "pythons", multiple=True, help="CPython version, e.g. 3.11 (repeatable).")
@click.option("--target", "targets", multiple=True, help="Platform tag (repeatable).")
@click.option("--sdist", help="Build this sdist (path or URL) instead of the upstream one.")
@click.option("--sha256", help="Expected sha256 of --sdist (computed for a local file).")
@click.option(
    "--index",
    help="Upstream index URL, 'pypi' or 'pip' [default: the farm configuration's upstream].",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("wheelhouse"),
    show_default=True,
    help="Where built wheels go.",
)
@click.option("--log-dir", type=click.Path(path_type=Path), help="Where build logs go.")
@click.option("--no-test", is_flag=True, help="Build, repair and check only; do not test.")
@click.option(
    "--backend",
    type=click.Choice(["cross", "emulated"]),
    help="Force this backend (no fallback) instead of the recipe's [build] backend.",
)
@click.option(
    "--parity/--no-parity",
    default=True,
    show_default=True,
    help="Gate each wheel on parity with upstream's wheel of the same release for another "
    "platform (on --index), when upstream has one or the recipe has [parity]. With --sdist, "
    "only when --index is given.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def build(
    recipe: Path | None,
    plan_file: Path | None,
    version: str | None,
    pythons: tuple[str, ...],
    targets: tuple[str, ...],
    sdist: str | None,
    sha256: str | None,
    index: str | None,
    out_dir: Path,
    log_dir: Path | None,
    no_test: bool,
    backend: str | None,
    parity: bool,
    as_json: bool,
) -> None:
    """Cross-build RECIPE (or every job of --plan) into repaired, checked, tested wheels.

    Exit status 1 when any build failed; every build still runs and keeps its log.
    """
    if (recipe is None) == (plan_file is None):
        raise click.UsageError("give a RECIPE or --plan FILE (one of them)")
    from builder.common.targets import TargetError, parse_python, parse_target

    for value, parse, hint in [
        *((p, parse_python, "--python") for p in pythons),
        *((t, parse_target, "--target") for t in targets),
    ]:
        try:
            parse(value)
        except TargetError as exc:
            raise click.BadParameter(f"{value!r}: {exc}", param_hint=hint) from None
    from builder.cli.config import farm_config
    from builder.plan.request import RequestError, jobs_for_recipe, jobs_from_plan

    try:
        if plan_file:
            jobs = jobs_from_plan(plan_file)
            jobs = [j for j in jobs if j.python in (pythons or (j.python,))]
            jobs = [j for j in jobs if j.target in (targets or (j.target,))]
        else:
            assert recipe is not None
            jobs = jobs_for_recipe(
                recipe,
                version=version,
                pythons=pythons,
                targets=targets,
                sdist=sdist,
                sha256=sha256,
                index=farm_config(upstream=("--index", index)).upstream,
            )
    except RequestError as exc:
        raise click.ClickException(str(exc)) from None
    with _progress(len(jobs), quiet=as_json) as (step, done):
        results = build_jobs(
            jobs,
            out_dir=out_dir,
            log_dir=log_dir,
            run_test=not no_test,
            progress=step,
            on_result=done,
            backend=backend,
            # A local --sdist is not necessarily upstream's release: compare only when asked where.
            parity_index=(index or "pypi") if parity and (index or not sdist) else None,
        )
    if as_json:
        click.echo(json.dumps({"results": [r.to_dict() for r in results]}, indent=2))
    else:
        _print_results(results, Console(file=sys.stdout, highlight=False))
        for r in results:
            if r.parity:
                click.echo(f"parity: {r.project} {r.version} cp{r.python} {r.target}: {r.parity}")
        # Failures in full, unwrapped: the first error line and the log to read.
        for r in results:
            if r.status is Outcome.FAILED:
                click.echo(
                    f"failed: {r.project} {r.version} cp{r.python} {r.target}: "
                    f"{r.step}: {r.error} (log: {r.log})"
                )
    if any(r.status is Outcome.FAILED for r in results):
        sys.exit(1)


@click.command("doctor")
@click.option("--install", is_flag=True, help="Install and download what is missing.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(install: bool, as_json: bool) -> None:
    """What the cross builder finds here: zig, qemu, host Pythons, sysroots; what can be built and tested."""
    from builder.build.doctor import diagnose, install_missing
    from builder.build.toolchain.host import ToolchainError

    err = Console(stderr=True)
    if install:
        try:
            with err.status("installing") as status:
                done = install_missing(lambda m: (status.update(m), err.print(f"[dim]{m}[/]")))
        except (ToolchainError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        err.print(f"installed: {', '.join(done) or 'nothing was missing'}")
    diag = diagnose()
    if as_json:
        click.echo(json.dumps(diag.to_dict(), indent=2))
        return
    out = Console()
    table = Table(title="tools, host Pythons, test sysroots", title_justify="left")
    for col in ("what", "where", "version / note"):
        table.add_column(col, overflow="fold")
    for t in (*diag.tools, *diag.pythons, *diag.sysroots):
        where = t.path or "[red]missing[/]"
        table.add_row(t.name, where, " ".join(x for x in (t.version, t.note) if x))
    out.print(table)
    combos = Table(title="Python x target", title_justify="left")
    for col in ("python", "target", "build", "test", "why not"):
        combos.add_column(col, overflow="fold")
    yes, no = "[green]yes[/]", "[red]no[/]"
    for c in diag.combos:
        combos.add_row(
            c.python, c.target, yes if c.buildable else no, yes if c.testable else no, c.why
        )
    out.print(combos)
    emu = diag.emulated
    out.print(
        "emulated backend: "
        + ("[green]supported[/]: " if emu.get("ok") else "[red]not supported[/]: ")
        + "; ".join(emu.get("reasons", []) if not emu.get("ok") else emu.get("details", []))
    )
    out.print(f"cache: {diag.cache}")
