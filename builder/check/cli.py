"""`wheelfarm check`: a thin shell over builder.check.check_files."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from .core import check_files
from .report import exit_code, render, to_json


@click.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of tables.")
def check(paths: tuple[str, ...], as_json: bool) -> None:
    """Prove that wheels are what their tags say.

    PATHS are wheel files or folders of wheels. Exit status: 0 all good, 1 a finding, 2 a wheel could
    not be read.
    """
    console = Console(stderr=False)
    with console.status("checking wheels", spinner="dots") if not as_json else _nothing():
        reports = check_files(paths)
    if as_json:
        click.echo(to_json(reports))
    else:
        render(reports, console)
    sys.exit(exit_code(reports))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
