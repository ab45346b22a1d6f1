"""`wheelfarm rootfs`: make or show the emulated backend's aarch64 root filesystems."""

from __future__ import annotations

import json

import click

from builder.build.toolchain.rootfs import SUITE_FOR_PYTHON, RootfsError, rootfs, suite_for


@click.command("rootfs")
@click.option(
    "--python",
    "pythons",
    multiple=True,
    type=click.Choice(sorted(SUITE_FOR_PYTHON)),
    help="CPython version whose root filesystem to make (repeatable; default: all).",
)
@click.option("--rebuild", is_flag=True, help="Make it again even if it is cached.")
@click.option("--json", "as_json", is_flag=True, help="Print the root filesystems as JSON.")
def rootfs_cli(pythons: tuple[str, ...], rebuild: bool, as_json: bool) -> None:
    """Make (or show) the cached aarch64 Debian root filesystems of the emulated backend."""
    from builder.build.toolchain.debian import DebianError
    from builder.build.toolchain.namespace import NamespaceError, ensure_qemu_static

    made = {}
    try:
        ensure_qemu_static()
        for py in pythons or sorted(SUITE_FOR_PYTHON):
            made[py] = str(rootfs(py, rebuild=rebuild))
    except (RootfsError, DebianError, NamespaceError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"rootfs": made}, indent=2))
    else:
        for py, path in made.items():
            click.echo(f"python{py} ({suite_for(py)}): {path}")
