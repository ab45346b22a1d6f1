"""`wheelfarm ledger`: what the build ledger knows (the farm at a glance, one project's attempts)."""

from __future__ import annotations

import json
import time

import click

from builder.farm.ledger import Ledger, LedgerError

_db_option = click.option(
    "--db",
    "db",
    envvar="WHEELFARM_LEDGER",
    metavar="PATH|URL",
    help="The ledger: a SQLite file or a postgresql:// URL (default: the data folder's "
    "ledger.sqlite3; env WHEELFARM_LEDGER).",
)


def _open(db: str | None) -> Ledger:
    try:
        return Ledger.open(db)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "-"


@click.group("ledger")
def ledger() -> None:
    """Read the build ledger."""


@ledger.command("summary")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def summary_command(db: str | None, as_json: bool) -> None:
    """The latest attempt of every (project, version, Python, target): counts and failures."""
    with _open(db) as led:
        s = led.summary()
    if as_json:
        click.echo(json.dumps(s.to_dict(), indent=2))
        return
    counts = ", ".join(f"{n} {o}" for o, n in s.by_outcome.items() if n)
    click.echo(
        f"{s.cells} cell(s) of {s.projects} project(s), {s.attempts} attempt(s): {counts or 'none'}"
    )
    click.echo(f"last run: {s.last_run or '-'} (last activity {_when(s.last_activity)} UTC)")
    for f in s.failures:
        kind = "transient" if f.transient else "deterministic"
        click.echo(
            f"failed: {f.project} {f.version} {f.python} {f.target}: {f.failure_class} ({kind}): "
            f"{f.key_line}"
        )
    for c in s.corrupt:
        click.echo(f"corrupt row {c.id} skipped: {c.error}", err=True)


@ledger.command("history")
@_db_option
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help="Print the attempts as JSON.")
def history_command(db: str | None, project: str, as_json: bool) -> None:
    """Every attempt for PROJECT, newest first."""
    with _open(db) as led:
        attempts = led.history(project)
        corrupt = list(led.corrupt.values())
    if as_json:
        click.echo(json.dumps([a.to_dict() for a in attempts], indent=2))
    else:
        for a in attempts:
            extra = f" {a.failure_class}: {a.key_line}" if a.failure_class else ""
            wheels = f" {len(a.wheels)} wheel(s)" if a.wheels else ""
            click.echo(
                f"{a.id:>6} {_when(a.started_at)} {a.version} {a.python} {a.target} "
                f"{a.outcome}{wheels}{extra}"
            )
    for c in corrupt:
        click.echo(f"corrupt row {c.id} skipped: {c.error}", err=True)
