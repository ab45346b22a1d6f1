"""One vocabulary for what became of a cell (project, version, Python, target).

The build, the ledger, the nightly, publishing, the index's pages and its JSON all use these values;
nothing else spells an outcome. A wheel that ran its test on the target architecture is TESTED; one
that was built and passed every static check but that nothing here can run (no interpreter for that
Python, no Mac) is CHECKED_NOT_RUN, shown as "checked, not run" everywhere and never as plain success.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    RUNNING = "running"  # started, not finished (yet, or ever: the process was killed)
    BUILT = "built"  # built and checked; no test was asked for (--no-test)
    TESTED = "tested"  # its test ran on the target architecture and passed
    CHECKED_NOT_RUN = "checked-not-run"  # built and checked; no interpreter here could run it
    FAILED = "failed"
    PUBLISHED = "published"  # in the ledger: the attempt's wheels reached the index

    @property
    def label(self) -> str:
        return LABELS[self]

    @property
    def ok(self) -> bool:
        return self in SUCCESS


class CellState(enum.StrEnum):
    """What the plan decided for a cell the nightly did not build."""

    OURS = "ours"  # our index already serves it
    UP_TO_DATE = "up-to-date"  # the ledger has a finished attempt with the same inputs
    UPSTREAM = "upstream"  # upstream covers it: nothing to build
    SKIPPED = "skipped"  # no sdist, yanked, excluded by requires-python or selectors


LABELS: dict[str, str] = {
    Outcome.RUNNING: "running",
    Outcome.PUBLISHED: "published",
    Outcome.TESTED: "tested",
    Outcome.BUILT: "built, no test asked",
    Outcome.CHECKED_NOT_RUN: "checked, not run",
    CellState.OURS: "in this index",
    CellState.UP_TO_DATE: "up to date",
    CellState.UPSTREAM: "not needed (upstream has it)",
    CellState.SKIPPED: "skipped",
    Outcome.FAILED: "failed",
}

SUCCESS = frozenset({Outcome.BUILT, Outcome.TESTED, Outcome.CHECKED_NOT_RUN, Outcome.PUBLISHED})
