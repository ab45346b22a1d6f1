"""`wheelfarm nightly`: a thin shell over builder.farm.nightly.run_nightly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from builder.common.outcome import CellState, Outcome
from builder.common.paths import data_dir
from builder.farm.ledger import LedgerError, database_url
from builder.farm.nightly import NightlyConfig, NightlyError, NightlyReport, run_nightly
from builder.publish import PublishError

STYLE = {
    Outcome.FAILED: "red",
    Outcome.PUBLISHED: "green",
    Outcome.TESTED: "green",
    Outcome.CHECKED_NOT_RUN: "yellow",
    CellState.OURS: "cyan",
}


@click.command("nightly")
@click.argument("recipes", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--index", "index_url", metavar="URL", help="Our index (default with --serve: local)."
)
@click.option(
    "--token", envvar="WHEELFARM_INDEX_TOKEN", help="Upload token ($WHEELFARM_INDEX_TOKEN)."
)
@click.option(
    "--upstream", default="pypi", show_default=True, help="'pypi', 'pip' or an index URL."
)
@click.option("--ledger", metavar="URL|PATH", help="SQLite path or postgresql:// URL.")
@click.option("--jobs", "-j", type=int, default=os.cpu_count() or 1, show_default=True)
@click.option("--python", "pythons", multiple=True, help="Only these Pythons (repeatable).")
@click.option("--target", "targets", multiple=True, help="Only these targets (repeatable).")
@click.option(
    "--serve",
    is_flag=True,
    help="Start the embedded index (data folder) for the run, and keep serving it afterwards.",
)
@click.option(
    "--protect",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A folder builds must not write, e.g. the index storage on this machine (repeatable; "
    "--serve protects its own).",
)
@click.option("--port", type=int, default=8080, show_default=True, help="Port for --serve.")
@click.option("--timeout", type=float, default=3 * 3600, show_default=True, help="Seconds per job.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
def nightly(
    recipes: tuple[Path, ...],
    index_url: str | None,
    token: str | None,
    upstream: str,
    ledger: str | None,
    jobs: int,
    pythons: tuple[str, ...],
    targets: tuple[str, ...],
    serve: bool,
    protect: tuple[Path, ...],
    port: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Plan, build, repair, check, test and publish every recipe; never redo finished work.

    RECIPES are files or folders (default: recipes/). Exit status: 0 all good, 1 a job failed, a
    recipe could not be planned or a good wheel could not be published, 2 the run could not start.
    """
    if not serve and not index_url:
        raise click.UsageError("say where to publish: --index URL, or --serve for the local index")
    console = Console(stderr=True)
    with _embedded_index(serve, port, upstream) as (served_url, served_token, storage):
        cfg = NightlyConfig(
            recipes=recipes or (Path("recipes"),),
            index_url=index_url or served_url,
            token=token or served_token,
            upstream=upstream,
            ledger=ledger,
            jobs=jobs,
            pythons=pythons,
            targets=targets,
            protect=(*protect, *_protected(storage, ledger)),
            timeout=timeout,
        )
        try:
            with console.status("nightly") as status:
                report = run_nightly(cfg, progress=lambda msg: status.update(msg))
        except (NightlyError, PublishError, LedgerError) as exc:
            click.echo(f"wheelfarm nightly: {exc}", err=True)
            sys.exit(2)
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2))
        else:
            _print(report, Console())
        if serve:
            console.print(f"serving {cfg.index_url} (Ctrl-C stops)")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    sys.exit(0 if report.ok else 1)


def _protected(storage: Path | None, ledger: str | None) -> tuple[Path, ...]:
    """What builds must not write: the index storage and a SQLite ledger."""
    paths = [storage] if storage else []
    url = database_url(ledger)
    if url.startswith("sqlite:///"):
        paths.append(Path(url.removeprefix("sqlite:///")))
    return tuple(p for p in paths if p is not None)


@contextlib.contextmanager
def _embedded_index(
    serve: bool, port: int, upstream: str
) -> Iterator[tuple[str, str | None, Path | None]]:
    """With --serve: the local index under gunicorn and a token of this run's own."""
    if not serve:
        yield "", None, None
        return
    from index_server.auth import TokenStore
    from index_server.serving import IndexStartError, running_index
    from index_server.state import Config, default_data_dir
    from index_server.storage import LocalStorage

    storage = default_data_dir()
    storage.mkdir(parents=True, exist_ok=True)
    tokens = TokenStore(LocalStorage(storage))
    record, secret = tokens.create(f"nightly-{int(time.time())}", "upload")
    try:
        config = Config(storage, upstream=upstream)  # its uploads are rebuilds of upstream releases
        with running_index(config, port, data_dir() / "index.log") as url:
            yield url, secret, storage
    except IndexStartError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        tokens.revoke(record.id)


def _print(report: NightlyReport, console: Console) -> None:
    table = Table("project", "version", "python", "target", "status", "reason / key line")
    for c in report.cells:
        style = STYLE.get(c.status, "")
        why = c.key_line if c.status == Outcome.FAILED and c.key_line else c.reason
        status = f"[{style}]{c.label}[/]" if style else c.label
        table.add_row(c.project, c.version, c.python, c.target, status, why)
    console.print(table)
    for error in report.errors:
        console.print(f"[red]error[/]: {error}")
    for warning in report.warnings:
        console.print(f"[yellow]warning[/]: {warning}")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items()))
    console.print(f"run {report.run_id}: {counts or 'nothing to do'} in {report.duration:.1f} s")
