"""`wheelfarm config` (the merged farm configuration and each value's source) and `wheelfarm init`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from builder.common.farmconfig import (
    FILE_NAME,
    ConfigError,
    FarmConfig,
    load_config,
    parse_config,
    render_config,
)


def farm_config(**options: tuple[str, Any]) -> FarmConfig:
    """The farm configuration with the command's options on top; a bad file is a clean error."""
    try:
        return load_config().with_options(**options)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the merged configuration as JSON.")
def config_command(as_json: bool) -> None:
    """Show the farm configuration every command uses here: each value and where it came from.

    Lookup: wheelfarm.toml (or [tool.wheelfarm] in pyproject.toml) in this folder or a parent, else
    the file $WHEELFARM_CONFIG names; then $WHEELFARM_DATA, $WHEELFARM_CACHE, $WHEELFARM_OWN_INDEX;
    a command's own options win over all of them.
    """
    cfg = farm_config()
    if as_json:
        click.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    click.echo(f"file: {cfg.file or 'none (defaults only; wheelfarm init writes one)'}")
    rows = [
        (key, _show(s.value), s.source)
        for key, s in cfg.settings.items()  # plain rows: never truncated in a pipe or a file
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for key, value, source in rows:
        click.echo(f"{key.ljust(widths[0])}  {value.ljust(widths[1])}  {source}")


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return ", ".join(value) or "-"
    return str(value)


@click.command("init")
@click.argument(
    "folder", required=False, type=click.Path(path_type=Path, file_okay=False), default=Path(".")
)
@click.option("--recipes", default="recipes", show_default=True, help="The recipes folder.")
@click.option("--upstream", default="pypi", show_default=True, help="'pypi', 'pip' or a URL.")
@click.option(
    "--own-index",
    default="http://127.0.0.1:8080/",
    show_default=True,
    help="The farm's own index (base URL).",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    default=("manylinux_2_28_aarch64",),
    show_default=True,
    help="Default targets (repeatable).",
)
@click.option(
    "--python",
    "pythons",
    multiple=True,
    help="Default Pythons (repeatable) [default: this Python].",
)
@click.option("--data", help="The data folder (default: left to $WHEELFARM_DATA / XDG).")
@click.option("--cache", help="The cache folder (default: left to $WHEELFARM_CACHE / XDG).")
@click.option("--force", is_flag=True, help="Replace an existing wheelfarm.toml.")
def init_command(
    folder: Path,
    recipes: str,
    upstream: str,
    own_index: str,
    targets: tuple[str, ...],
    pythons: tuple[str, ...],
    data: str | None,
    cache: str | None,
    force: bool,
) -> None:
    """Write FOLDER/wheelfarm.toml (default: here), with a comment on every key."""
    from builder.common.atomic import atomic_write_text

    path = folder / FILE_NAME
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists (--force replaces it)")
    values = {
        "recipes": recipes,
        "upstream": upstream,
        "own-index": own_index,
        "targets": list(targets),
        "pythons": list(pythons) or [f"{sys.version_info.major}.{sys.version_info.minor}"],
        "data": data,
        "cache": cache,
    }
    text = render_config(values)
    try:  # validated before anything is written: a bad option never leaves a bad file behind
        parse_config(text, path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    click.echo(f"wrote {path}")
