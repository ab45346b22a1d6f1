"""`wheelfarm publish`: a thin shell over builder.publish.publish."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from builder.common.upstream import IndexClient, UpstreamError
from builder.publish import REFUSED, Destination, PublishError, publish, summarize


@click.command("publish")
@click.argument("wheels", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--index",
    "index_url",
    metavar="URL",
    help="wheelfarm index (base, /simple/ or /legacy/ URL) [default: the farm configuration's "
    "own-index].",
)
@click.option(
    "--repository", metavar="NAME", help="Take index URL and token from ~/.pypirc [NAME]."
)
@click.option(
    "--token", envvar="WHEELFARM_INDEX_TOKEN", help="Upload token ($WHEELFARM_INDEX_TOKEN)."
)
@click.option(
    "--upstream",
    help="Index whose file names must not be shadowed ('pypi', 'pip', a URL, or 'none') "
    "[default: the farm configuration's upstream, else pypi].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one result per wheel as JSON.")
def publish_command(
    wheels: tuple[Path, ...],
    index_url: str | None,
    repository: str | None,
    token: str | None,
    upstream: str,
    as_json: bool,
) -> None:
    """Upload WHEELS (files or folders of *.whl) to a wheelfarm index with twine.

    Every wheel must pass `wheelfarm check`; a file name the upstream index already has, or that our
    index has with other bytes, is refused; the same bytes already on our index are skipped.
    Exit status: 0 when nothing was refused, 1 otherwise, 2 when publishing could not start.
    """
    from builder.cli.config import farm_config

    cfg = farm_config(upstream=("--upstream", upstream), own_index=("--index", index_url))
    index_url, upstream = cfg.own_index, cfg.upstream
    files = [f for w in wheels for f in (sorted(w.glob("*.whl")) if w.is_dir() else [w])]
    try:
        if repository:
            dest = Destination.from_pypirc(repository)
        elif index_url:
            dest = Destination.for_index(index_url, token)
        else:
            raise click.UsageError("say where: --index URL or --repository NAME")
        up = None if upstream == "none" else IndexClient(upstream)
        try:
            results = publish(files, dest, upstream=up)
        finally:
            if up is not None:
                up.close()
    except (PublishError, UpstreamError) as exc:
        click.echo(f"wheelfarm publish: {exc}", err=True)
        raise SystemExit(2) from None
    if as_json:
        click.echo(json.dumps({"results": [r.to_dict() for r in results]}, indent=2))
    else:
        table = Table("wheel", "status", "reason")
        for r in results:
            style = "red" if r.status == REFUSED else "green"
            table.add_row(r.wheel.name, f"[{style}]{r.status}[/]", r.reason)
        console = Console()
        console.print(table)
        console.print(", ".join(f"{n} {s}" for s, n in summarize(results).items()))
    raise SystemExit(1 if any(not r.ok for r in results) else 0)
