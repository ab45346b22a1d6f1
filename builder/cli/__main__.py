"""`python -m builder.cli`: the `wheelfarm` command (nightly --serve starts the index this way)."""

from builder.cli import main

main(prog_name="wheelfarm")
