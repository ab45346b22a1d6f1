"""`wheelfarm export DEST`: the index's read side as static files (index_server.export)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from index_server.cli import _data, data_option


@click.command("export")
@click.argument("dest")
@data_option
@click.option(
    "--files-url",
    metavar="URL",
    help="Link the files where they live (the base URL of an index serving /files/...) instead of "
    "copying them and their .metadata into DEST.",
)
@click.option(
    "--storage",
    metavar="s3://BUCKET/PREFIX",
    envvar="WHEELFARM_INDEX_STORAGE",
    help="Export the index kept in this S3-compatible store instead of the data folder.",
)
@click.option(
    "--database",
    metavar="postgresql://...",
    envvar="WHEELFARM_INDEX_DATABASE",
    help="The index's catalog in PostgreSQL (as given to wheelfarm serve --database).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def export_command(
    dest: str,
    data: Path | None,
    files_url: str | None,
    storage: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    """Write the simple API (PEP 503 HTML and PEP 691 JSON pages, PEP 658 .metadata) and the files
    as static files under DEST (a folder, or s3://bucket/prefix), for nginx (deploy/nginx/wheelfarm-export.conf), S3 or a CDN.

    Incremental: only pages whose bytes changed are rewritten, files already exported are not copied
    again, and what the index no longer holds is removed. Every page is replaced atomically.
    """
    from index_server.catalog_sql import catalog_for
    from index_server.export import ExportError, export
    from index_server.storage import LocalStorage, Storage, StorageError
    from index_server.storage_s3 import storage_from_url

    if files_url is not None and not files_url.startswith(("http://", "https://", "/")):
        raise click.BadParameter(f"{files_url!r}: give an http(s) URL or an absolute path")
    try:
        store: Storage | None = storage_from_url(storage)
        if store is None:
            source = _data(data)
            if not source.is_dir():
                raise click.ClickException(f"{source}: no index data folder here (--data)")
            store = LocalStorage(source)
        catalog = catalog_for(store, database)
        catalog.load()
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    progress = None
    bar = None
    if sys.stderr.isatty() and len(catalog.projects()) > 1:
        from rich.console import Console
        from rich.progress import Progress

        bar = Progress(console=Console(stderr=True), transient=True)
        task = bar.add_task("exporting", total=len(catalog.projects()))
        bar.start()
        progress = lambda _name: bar.advance(task)  # noqa: E731
    try:
        report = export(store, dest, files_url=files_url, progress=progress, catalog=catalog)
    except (ExportError, StorageError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(
        f"{dest}: {report.projects} project(s), {report.files} file(s); "
        f"{len(report.pages_written)} page(s) written, {report.pages_unchanged} unchanged; "
        f"{len(report.files_copied)} file(s) copied, {report.files_kept} already there; "
        f"{len(report.removed)} removed"
    )
    if report.names_map_written:
        click.echo(
            f"{dest}: the project names changed: reload nginx (nginx -s reload) so that other "
            "spellings of the new names are redirected",
            err=True,
        )
