"""One vocabulary for what became of a cell (project, version, Python, target).

The build, the ledger, the nightly, publishing, the index's pages and its JSON all use these values;
nothing else spells an outcome. A wheel that ran its test on the target architecture is TESTED; one
that was built and passed every static check but that nothing here can run (no interpreter for that
Python, no Mac) is CHECKED_NOT_RUN, shown as "checked, not run" everywhere and never as plain success.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass


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


@dataclass(frozen=True)
class TestEvidence:
    """What a wheel's outcome rests on, recorded in its provenance: what ran, on which interpreter,
    and a digest of what it printed; or why nothing ran."""

    __test__ = False  # not a pytest class

    outcome: Outcome  # TESTED, CHECKED_NOT_RUN or BUILT (no test asked for)
    interpreter: str = ""  # e.g. "python3.11 of Debian bookworm arm64 under qemu-aarch64"
    command: str = ""  # the recipe's test as it ran: imports, call, test-command
    output_sha256: str = ""
    reason: str = ""  # why it did not run (CHECKED_NOT_RUN, BUILT)

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TestEvidence:
        return cls(
            outcome=Outcome(str(data["outcome"])),
            interpreter=str(data.get("interpreter", "")),
            command=str(data.get("command", "")),
            output_sha256=str(data.get("output_sha256", "")),
            reason=str(data.get("reason", "")),
        )
