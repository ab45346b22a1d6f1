"""A checked wheel's report, as data, a rich table for people, or JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .binaries import Binary
from .findings import Finding

if TYPE_CHECKING:
    from rich.console import Console

# The shape of `wheelfarm check --json`; bump when a field changes meaning.
JSON_VERSION = 1


@dataclass(frozen=True)
class Report:
    wheel: str  # the path or URL that was checked
    tags: tuple[str, ...] = ()
    binaries: tuple[Binary, ...] = ()
    findings: tuple[Finding, ...] = ()
    error: str | None = None  # the wheel could not be read at all (exit 2)
    # What was verified beyond the findings, one line per Mach-O slice (signature, symbols, loads).
    evidence: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the wheel may be published: readable and without error findings."""
        return self.error is None and not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, object]:
        return {
            "wheel": self.wheel,
            "ok": self.ok,
            "error": self.error,
            "tags": list(self.tags),
            "findings": [f.to_dict() for f in self.findings],
            "binaries": [b.to_dict() for b in self.binaries],
            "evidence": list(self.evidence),
        }


def exit_code(reports: Sequence[Report]) -> int:
    """0 all good, 1 at least one error finding, 2 at least one wheel could not be read."""
    if any(r.error for r in reports):
        return 2
    return 0 if all(r.ok for r in reports) else 1


def to_json(reports: Sequence[Report]) -> str:
    return json.dumps(
        {"version": JSON_VERSION, "reports": [r.to_dict() for r in reports]}, indent=2
    )


def render(reports: Sequence[Report], console: Console) -> None:
    """One table of findings (or a line saying the wheel is clean) per wheel."""
    from rich.table import Table

    for report in reports:
        name = report.wheel.rsplit("/", 1)[-1]
        if report.error:
            console.print(f"[bold red]error[/] {report.error}", soft_wrap=True)
            continue
        judged = [b for b in report.binaries if b.judged]
        summary = f"{len(judged)} binar{'y' if len(judged) == 1 else 'ies'}"
        if archives := len(report.binaries) - len(judged):
            summary += f", {archives} not judged"
        if not report.findings:
            console.print(f"[bold green]ok[/] {name} ({summary})", soft_wrap=True)
            _evidence(report, console)
            continue
        table = Table(title=f"{name} ({summary})", title_justify="left", expand=False)
        # The message names the file inside the wheel; JSON carries it separately as "path".
        table.add_column("rule", no_wrap=True)
        table.add_column("message", overflow="fold")
        for f in report.findings:
            style = "red" if f.severity == "error" else "yellow"
            table.add_row(f"[{style}]{f.rule}[/]", f.message)
        console.print(table)
        _evidence(report, console)


def _evidence(report: Report, console: Console) -> None:
    for line in report.evidence:
        console.print(f"  verified: {line}", soft_wrap=True, markup=False, highlight=False)
