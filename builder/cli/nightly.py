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
from rich.text import Text

from builder.cli.config import farm_config
from builder.cli.progress import NightlyDisplay, print_rows, stderr_console
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
    "--index",
    "index_url",
    metavar="URL",
    help="Our index [default with --serve: the local one; else the farm configuration's own-index].",
)
@click.option(
    "--token", envvar="WHEELFARM_INDEX_TOKEN", help="Upload token ($WHEELFARM_INDEX_TOKEN)."
)
@click.option(
    "--upstream",
    help="'pypi', 'pip' or an index URL [default: the farm configuration's upstream, else pypi].",
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
@click.option(
    "--export",
    "export_dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="After publishing, bring the static export in this folder up to date (wheelfarm export).",
)
@click.option(
    "--export-from",
    type=click.Path(file_okay=False, path_type=Path),
    help="The index data folder to export (default: the --serve index's, else $WHEELFARM_DATA/index).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
def nightly(
    recipes: tuple[Path, ...],
    index_url: str | None,
    token: str | None,
    upstream: str | None,
    ledger: str | None,
    jobs: int,
    pythons: tuple[str, ...],
    targets: tuple[str, ...],
    serve: bool,
    protect: tuple[Path, ...],
    port: int,
    timeout: float,
    export_dest: Path | None,
    export_from: Path | None,
    as_json: bool,
) -> None:
    """Plan, build, repair, check, test and publish every recipe; never redo finished work.

    RECIPES are files or folders (default: the farm configuration's recipes folder). Exit status: 0
    all good, 1 a job failed, a recipe could not be planned or a good wheel could not be published,
    2 the run could not start.
    """
    farm = farm_config(upstream=("--upstream", upstream), own_index=("--index", index_url))
    if not serve and not farm.own_index:
        raise click.UsageError(
            "say where to publish: --index URL, --serve for the local index, or own-index in the "
            "farm configuration (wheelfarm init)"
        )
    console = stderr_console()
    with _embedded_index(serve, port, farm.upstream, console) as (
        served_url,
        served_token,
        storage,
    ):
        cfg = NightlyConfig(
            recipes=recipes or (farm.recipes,),
            index_url=(index_url or served_url) if serve else str(farm.own_index),
            token=token or served_token,
            upstream=farm.upstream,
            ledger=ledger,
            jobs=jobs,
            pythons=pythons,
            targets=targets,
            protect=(*protect, *_protected(storage, ledger)),
            timeout=timeout,
        )
        try:
            with NightlyDisplay(console, jobs=jobs) as display:
                report = run_nightly(cfg, progress=display.say, events=display.event)
        except (NightlyError, PublishError, LedgerError) as exc:
            click.echo(f"wheelfarm nightly: {exc}", err=True)
            sys.exit(2)
        exported = _export(export_dest, export_from or storage) if export_dest else None
        if as_json:
            doc = report.to_dict() | ({"export": exported} if exported else {})
            click.echo(json.dumps(doc, indent=2))
        else:
            _print(report, Console(file=sys.stdout, highlight=False))
            if exported:
                console.print(
                    f"export {exported['dest']}: {len(exported['pages_written'])} page(s) "
                    f"written, {len(exported['files_copied'])} file(s) copied"
                )
        if exported is not None and "error" in exported:
            click.echo(f"wheelfarm nightly: export: {exported['error']}", err=True)
        if serve:
            console.print(f"still serving {cfg.index_url} (Ctrl-C stops)", soft_wrap=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    sys.exit(0 if report.ok and not (exported and "error" in exported) else 1)


def _export(dest: Path, source: Path | None) -> dict:
    """The static export after publishing (index_server.export); an error is reported, not raised:
    the wheels are published already."""
    from index_server.app import default_data_dir
    from index_server.export import ExportError, export
    from index_server.storage import LocalStorage, StorageError

    source = source or default_data_dir()
    if not source.is_dir():
        return {"dest": str(dest), "error": f"{source}: no index data folder (--export-from)"}
    try:
        return export(LocalStorage(source), dest).to_dict()
    except (ExportError, StorageError, OSError) as exc:
        return {"dest": str(dest), "error": str(exc)}


def _protected(storage: Path | None, ledger: str | None) -> tuple[Path, ...]:
    """What builds must not write: the index storage and a SQLite ledger."""
    paths = [storage] if storage else []
    url = database_url(ledger)
    if url.startswith("sqlite:///"):
        paths.append(Path(url.removeprefix("sqlite:///")))
    return tuple(p for p in paths if p is not None)


@contextlib.contextmanager
def _embedded_index(
    serve: bool, port: int, upstream: str, console: Console
) -> Iterator[tuple[str, str | None, Path | None]]:
    """With --serve: the local index under gunicorn and a token of this run's own. It serves from
    the first seconds, and says so at once: /status fills up as the run goes."""
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
            console.print(
                f"serving {url} (the run's progress: {url}status; "
                f"index log: {data_dir() / 'index.log'})",
                soft_wrap=True,  # one line, wherever it goes
            )
            yield url, secret, storage
    except IndexStartError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        tokens.revoke(record.id)


def _print(report: NightlyReport, console: Console) -> None:
    """The summary: a table (plain rows when not a terminal: nothing cut), errors, and every
    warning again, since the live lines that first showed them may be long gone."""
    rows, styles = [], []
    for c in report.cells:
        why = c.key_line if c.status == Outcome.FAILED and c.key_line else c.reason
        rows.append((c.project, c.version, c.python, c.target, c.label, why or ""))
        styles.append(STYLE.get(c.status, ""))
    headers = ("project", "version", "python", "target", "status", "reason / key line")
    print_rows(console, headers, rows, styles)
    wrap = not console.is_terminal
    for error in report.errors:
        console.print(Text("error", style="red") + f": {error}", soft_wrap=wrap)
    for warning in report.warnings:
        console.print(Text("warning", style="yellow") + f": {warning}", soft_wrap=wrap)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items()))
    console.print(
        f"run {report.run_id}: {counts or 'nothing to do'} in {report.duration:.1f} s",
        soft_wrap=not console.is_terminal,
    )
