"""`python -m builder.cli ...` is the `wheelfarm` command (used where the console script may not be
on PATH, e.g. `nightly --serve` starting the index with the same interpreter)."""

from builder.cli import main

main()
