"""`wheelfarm serve`, `wheelfarm token ...`, `wheelfarm yank` / `unyank`: thin shells over the library."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import click

from index_server.state import DEFAULT_MAX_UPLOAD, Config, default_data_dir

data_option = click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Index storage folder [default: $WHEELFARM_DATA/index].",
)


def _data(data: Path | None) -> Path:
    return data if data is not None else default_data_dir()


# Where an index lives beyond the data folder (the multi-host layout): `serve`, `export`, `yank`,
# `unyank` and `token` take the same two options, so every command reaches the same index.
storage_option = click.option(
    "--storage",
    metavar="s3://BUCKET/PREFIX",
    envvar="WHEELFARM_INDEX_STORAGE",
    help="Keep files and records in an S3-compatible store (endpoint and credentials: AWS_* "
    "variables; WHEELFARM_S3_DOWNLOADS=redirect|stream) instead of the data folder.",
)
database_option = click.option(
    "--database",
    metavar="postgresql://...",
    envvar="WHEELFARM_INDEX_DATABASE",
    help="Keep the catalog (files, hashes, metadata digests, yanks), the tokens and the farm status "
    "in PostgreSQL, shared by hosts.",
)


def _where(data: Path | None, storage: str | None) -> str:
    """How messages name the index: the bucket URL or the data folder."""
    return storage or str(_data(data))


def _storage(data: Path | None, storage: str | None):
    """The index's Storage: the bucket of --storage, else the data folder."""
    from index_server.storage import LocalStorage
    from index_server.storage_s3 import storage_from_url

    return storage_from_url(storage) or LocalStorage(_data(data))


@click.command()
@data_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--private", is_flag=True, help="Reads need a token too (HTTP Basic, user __token__)."
)
@click.option("--workers", type=int, default=None, help="gunicorn workers [default: CPU cores].")
@click.option(
    "--embedded", is_flag=True, help="Use the embedded single-process server instead of gunicorn."
)
@click.option(
    "--base-url", default="", help="Public URL prefix for links, e.g. https://wheels.example.com."
)
@click.option(
    "--max-upload", type=int, default=DEFAULT_MAX_UPLOAD, show_default=True, help="Bytes."
)
@click.option("--access-log", is_flag=True, help="Log every request to stdout.")
@click.option(
    "--upstream",
    default="pypi",
    show_default=True,
    help="The public index whose names uploads must not shadow: 'pypi', 'pip', a PEP 691/503 "
    "index URL, or 'none' (air-gapped: no check).",
)
@click.option(
    "--upstream-max-stale",
    type=click.IntRange(min=0),
    default=600,
    show_default=True,
    help="Seconds the overlay (/overlay/simple/) serves an upstream page before revalidating it.",
)
@click.option(
    "--cooldown-days",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="The overlay hides upstream files uploaded less than this many days ago (0: off).",
)
@click.option(
    "--cache-upstream-files",
    is_flag=True,
    help="The overlay links upstream files through /overlay/files/: each is downloaded once into "
    "the index storage, verified by its sha256 (air-gapped clients, CI).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse (422, with the findings) wheels that fail the wheel checker (wheelfarm check).",
)
@storage_option
@database_option
def serve(
    data: Path | None,
    host: str,
    port: int,
    private: bool,
    workers: int | None,
    embedded: bool,
    base_url: str,
    max_upload: int,
    access_log: bool,
    strict: bool,
    upstream: str,
    upstream_max_stale: int,
    cooldown_days: float,
    cache_upstream_files: bool,
    storage: str | None,
    database: str | None,
) -> None:
    """Serve the package index (simple API, uploads at /legacy/, pages at /)."""
    if upstream.lower() != "none":
        from builder.common.upstream import UpstreamError, resolve_index_url

        try:
            resolve_index_url(upstream)
        except UpstreamError as exc:
            raise click.BadParameter(str(exc), param_hint="--upstream") from None
    config = Config(
        _data(data),
        private,
        max_upload,
        base_url.rstrip("/"),
        strict,
        upstream,
        upstream_max_stale,
        cooldown_days,
        cache_upstream_files,
    )
    config.data.mkdir(parents=True, exist_ok=True)
    if storage:
        from index_server.storage import StorageError
        from index_server.storage_s3 import storage_from_url

        try:
            storage_from_url(storage).ensure_bucket()  # type: ignore[union-attr]
        except StorageError as exc:
            raise click.ClickException(str(exc)) from None
        os.environ["WHEELFARM_INDEX_STORAGE"] = storage  # gunicorn's workers read it
    if database:
        os.environ["WHEELFARM_INDEX_DATABASE"] = database
    where = storage or config.data
    click.echo(f"wheelfarm index: http://{host}:{port}/ serving {where}", err=True)
    if embedded or (shutil.which("gunicorn") is None and not _has_gunicorn()):
        from index_server.app import create_app

        create_app(config).run(host=host, port=port, threaded=True)
        return
    from index_server.serving import exec_gunicorn

    exec_gunicorn(config, host, port, workers, access_log)


def _has_gunicorn() -> bool:
    import importlib.util

    return importlib.util.find_spec("gunicorn") is not None


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (stored as hashes only)."""


def _tokens(data: Path | None, storage: str | None, database: str | None):
    from index_server.auth_sql import tokens_for

    return tokens_for(_storage(data, storage), database)


@contextlib.contextmanager
def _index_errors(where: str) -> Iterator[None]:
    """A storage or database that cannot be reached is a one-line error naming the index."""
    import sqlalchemy as sa

    from index_server.storage import StorageError

    try:
        yield
    except LookupError as exc:
        raise click.ClickException(f"{where}: {exc.args[0]}") from None
    except (StorageError, sa.exc.SQLAlchemyError) as exc:  # a full disk keeps the old tokens
        raise click.ClickException(f"{where}: {exc}") from None


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["upload", "read"]),
    default="upload",
    show_default=True,
    help="upload: upload, yank and read; read: only read a private index.",
)
@data_option
@storage_option
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_create(
    name: str,
    scope: str,
    data: Path | None,
    storage: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    """Create a token NAME and print its secret (shown this once only)."""
    with _index_errors(_where(data, storage)):
        record, secret = _tokens(data, storage, database).create(name, scope)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"id": record.id, "name": name, "scope": scope, "token": secret}))
    else:
        click.echo(secret)
        click.echo(
            f"token {record.id} ({name}, {scope}): keep it now, it is stored only as a hash",
            err=True,
        )


@token.command("list")
@data_option
@storage_option
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_list(data: Path | None, storage: str | None, database: str | None, as_json: bool) -> None:
    """List tokens (ids, names, scopes; never secrets)."""
    with _index_errors(_where(data, storage)):
        tokens = _tokens(data, storage, database).tokens()
    if as_json:
        click.echo(
            json.dumps([{k: v for k, v in asdict(t).items() if k != "sha256"} for t in tokens])
        )
        return
    for t in tokens:
        click.echo(f"{t.id}  {t.scope:<6}  {t.created}  {t.name}")


@token.command("revoke")
@click.argument("token_id")
@data_option
@storage_option
@database_option
def token_revoke(
    token_id: str, data: Path | None, storage: str | None, database: str | None
) -> None:
    """Revoke the token with this id (or name)."""
    with _index_errors(_where(data, storage)):
        t = _tokens(data, storage, database).revoke(token_id)
    click.echo(f"revoked token {t.id} ({t.name})")


def _set_yanked(
    project: str,
    target: str,
    reason: str | None,
    data: Path | None,
    storage: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    from index_server.catalog_sql import catalog_for

    with _index_errors(_where(data, storage)):
        # The change reaches every host: a bump of the bucket's generation object, or of the
        # database's change counter.
        catalog = catalog_for(_storage(data, storage), database)
        changed = catalog.set_yanked(project, target, reason)
    if as_json:
        click.echo(json.dumps([{"filename": f.filename, "yanked": f.yanked} for f in changed]))
        return
    for f in changed:
        click.echo(f"{'yanked' if reason is not None else 'un-yanked'} {f.filename}")


@click.command()
@click.argument("project")
@click.argument("target", metavar="FILE|VERSION")
@click.option("--reason", default="", help="Why (shown to pip users).")
@data_option
@storage_option
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def yank(
    project: str,
    target: str,
    reason: str,
    data: Path | None,
    storage: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    """Yank one file, or every file of a version, of PROJECT (PEP 592)."""
    _set_yanked(project, target, reason, data, storage, database, as_json)


@click.command()
@click.argument("project")
@click.argument("target", metavar="FILE|VERSION")
@data_option
@storage_option
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def unyank(
    project: str,
    target: str,
    data: Path | None,
    storage: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    """Undo a yank of one file or of every file of a version."""
    _set_yanked(project, target, None, data, storage, database, as_json)
