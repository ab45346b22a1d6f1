"""The `wheelfarm` command: a thin shell over library functions.

Subcommands are imported only when they run, so `wheelfarm --help` stays fast and a command never pays
for another's imports (Flask, auditwheel, ...). Each subcommand lives beside the code it drives; add it to
SUBCOMMANDS as "name": "module:attribute".
"""

from __future__ import annotations

import importlib

import click

SUBCOMMANDS: dict[str, str] = {
    "build": "builder.cli.build:build",
    "check": "builder.cli.check:check",
    "config": "builder.cli.config:config_command",
    "cibw-build": "builder.cli.cibw:cibw_build_command",
    "cibw-options": "builder.cli.cibw:cibw_options_command",
    "doctor": "builder.cli.build:doctor",
    "export": "index_server.export_cli:export_command",
    "fanout": "builder.cli.fanout:fanout_command",
    "init": "builder.cli.config:init_command",
    "ledger": "builder.cli.ledger:ledger",
    "nightly": "builder.cli.nightly:nightly",
    "plan": "builder.cli.plan:plan_command",
    "publish": "builder.cli.publish:publish_command",
    "recipe": "builder.cli.recipe:recipe",
    "rootfs": "builder.cli.rootfs:rootfs_cli",
    "serve": "index_server.cli:serve",
    "token": "index_server.cli:token",
    "unyank": "index_server.cli:unyank",
    "yank": "index_server.cli:yank",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module_name, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        # A bad farm configuration (read by every command, see builder.common.farmconfig) is one
        # clean error naming the file and the key, wherever it is first read.
        from builder.common.farmconfig import ConfigError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(
    cls=LazyGroup, lazy=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="wheelfarm")
def main() -> None:
    """wheelfarm: build the arm64/aarch64 wheels PyPI is missing, prove them, and serve them."""


if __name__ == "__main__":
    main()
