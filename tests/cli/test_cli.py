from __future__ import annotations

import subprocess

from click.testing import CliRunner

from builder.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in SUBCOMMANDS:
        assert name in result.output


def test_every_subcommand_has_help() -> None:
    for name in SUBCOMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_console_script_is_installed() -> None:
    out = subprocess.run(["wheelfarm", "--version"], capture_output=True, text=True, check=True)
    assert "0.1.0" in out.stdout
