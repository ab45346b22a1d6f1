"""How commands show long work and tables: live on a terminal, plain lines everywhere else.

On a terminal the nightly gets one rich Live display: a line per running job (project, version,
Python, target, step, elapsed), the count done / failed / left and an estimate of the time left.
Written to a file or a pipe the same events become one plain, timestamped line per step change (no
redraws, nothing cut), and tables become plain rows as wide as their content: a name is never cut
to fit 80 columns (`confluent-ka…`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from builder.common.outcome import Outcome
from builder.farm.nightly import JobEvent


def stderr_console(file: TextIO | None = None) -> Console:
    """A console bound to the stream it was given (default: sys.stderr now), not to whatever
    sys.stderr is later: twine's output is redirected to a log while it uploads."""
    return Console(file=file or sys.stderr, highlight=False)


def print_rows(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: Sequence[str] | None = None,
) -> None:
    """A table: rich on a terminal (long cells wrap, never an ellipsis), else plain aligned rows.

    `styles` gives one rich style per row (used on a terminal only)."""
    if console.is_terminal:
        table = Table(*headers)
        for column in table.columns:
            column.overflow = "fold"
        for i, row in enumerate(rows):
            table.add_row(*row, style=styles[i] if styles else None)
        console.print(table)
        return
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        console.out("  ".join([*cells, row[-1]]).rstrip(), highlight=False)


@dataclass
class _Job:
    project: str
    version: str
    python: str
    target: str
    step: str = "queued"
    started: float | None = None


@dataclass
class NightlyDisplay:
    """Receives the nightly's run messages (`say`) and job events (`event`) from any thread."""

    console: Console
    jobs: int = 1  # how many run at once, for the estimate
    _jobs: dict[tuple[str, str, str, str], _Job] = field(default_factory=dict)
    _durations: list[float] = field(default_factory=list)
    _failed: int = 0
    _message: str = "starting"
    _warnings: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _live: Live | None = None
    _t0: float = field(default_factory=time.monotonic)

    def __enter__(self) -> NightlyDisplay:
        if self.console.is_terminal:
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,  # our own output goes through the console
                redirect_stderr=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    # -- input -----------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        with self._lock:
            self._message = message
        if message.startswith("warning: "):
            self._warn(message.removeprefix("warning: "))
        else:
            self._line(message)

    def event(self, ev: JobEvent) -> None:
        with self._lock:
            job = self._jobs.setdefault(ev.key, _Job(*ev.key))
            if ev.kind == "start":
                job.started = time.monotonic()
                job.step = ev.text
            elif ev.kind == "step":
                job.step = ev.text
            elif ev.kind == "finish":
                job.step = f"done: {ev.text}"
                self._durations.append(ev.duration)
                self._failed += ev.text == Outcome.FAILED
                del self._jobs[ev.key]
            counts = self._counts()
        name = f"{ev.project} {ev.version} cp{ev.python} {ev.target}"
        if ev.kind == "warning":
            self._warn(ev.text)
        elif ev.kind == "finish":
            self._line(f"{name}: {ev.text} in {ev.duration:.0f} s ({counts})")
        elif ev.kind in ("start", "step"):
            self._line(f"{name}: {ev.text}")

    # -- output ----------------------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        """Warnings are printed above the live display at once, on a terminal too."""
        with self._lock:
            if message in self._warnings:
                return
            self._warnings.append(message)
        self.console.print(
            Text("warning: ", style="yellow") + Text(message),
            soft_wrap=not self.console.is_terminal,  # a file or a pipe: one line, grep finds it
        )

    def _line(self, message: str) -> None:
        if self._live is None:  # not a terminal: one plain line per change, nothing redrawn
            stamp = time.strftime("%H:%M:%S")
            self.console.out(f"{stamp} {message}", highlight=False)

    def _counts(self) -> str:
        done = len(self._durations)
        queued = sum(1 for j in self._jobs.values() if j.started is None)
        running = len(self._jobs) - queued
        text = f"{done} done, {self._failed} failed, {running} running, {queued} queued"
        if done and (queued or running):
            # Finished jobs' mean duration over the jobs left, `jobs` at a time: a rough estimate.
            mean = sum(self._durations) / done
            left = mean * (queued + running) / max(1, min(self.jobs, queued + running))
            text += f", about {_clock(left)} left"
        return text

    def _render(self) -> Group:
        now = time.monotonic()
        with self._lock:
            running = [j for j in self._jobs.values() if j.started is not None]
            table = Table("project", "version", "python", "target", "step", "elapsed", box=None)
            for j in running:
                table.add_row(
                    j.project,
                    j.version,
                    j.python,
                    j.target,
                    Text(j.step, overflow="ellipsis", no_wrap=True),
                    _clock(now - (j.started or now)),
                )
            head = Text(f"wheelfarm nightly {_clock(now - self._t0)}: ", style="bold")
            head += Text(self._counts() if self._durations or self._jobs else self._message)
            parts: list = [head]
            if running:
                parts.append(table)
            elif self._message:
                parts.append(Text(self._message, style="dim"))
        return Group(*parts)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
