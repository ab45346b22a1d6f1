"""One build log and the one way to run a build command: every command, its environment changes and its
output go to one file per build, kept after the build; a failure raises `BuildError` with the step and
the first real error line of that command's output (`first_error_line`).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class BuildError(RuntimeError):
    """A build step failed. `summary` is the first real error line; `log` the full log's path."""

    def __init__(self, step: str, summary: str, log: Path | None = None) -> None:
        where = f" (log: {log})" if log else ""
        super().__init__(f"{step}: {summary}{where}")
        self.step = step
        self.summary = summary
        self.log = log


RULES_FILE = Path(__file__).with_name("error_lines.toml")


@dataclass(frozen=True)
class _Rule:
    tool: str
    pattern: re.Pattern[str]
    following: bool


@functools.cache
def _rules(path: Path = RULES_FILE) -> tuple[tuple[_Rule, ...], re.Pattern[str]]:
    data = tomllib.loads(path.read_text())
    rules = tuple(
        _Rule(r["tool"], re.compile(r["pattern"]), bool(r.get("following", False)))
        for r in data["rule"]
    )
    noise = re.compile("|".join(f"(?:{n})" for n in data["noise"]))
    return rules, noise


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def first_error_line(text: str) -> str | None:
    """The line of `text` that states the real error (rules and noise: error_lines.toml)."""
    found = error_lines(text, limit=1)
    return found[0] if found else None


def error_lines(text: str, limit: int = 5) -> list[str]:
    """Up to `limit` distinct lines that state real errors, the most specific rule first."""
    rules, noise = _rules()
    lines = [_ANSI.sub("", ln).strip() for ln in text.splitlines()]
    found: list[str] = []
    for rule in rules:
        for number, line in enumerate(lines):
            if not line or noise.search(line) or not rule.pattern.search(line):
                continue
            if rule.following:
                message = []
                for nxt in lines[number + 1 :]:
                    if not nxt or noise.search(nxt):
                        break
                    message.append(nxt)
                line = " ".join(message) or line
            if line[:300] not in found:
                found.append(line[:300])
            if len(found) >= limit:
                return found
    return found


class BuildLog:
    """The full log of one build: every command, its environment changes and its output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._start = time.monotonic()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> BuildLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, text: str) -> None:
        self._fh.write(text if text.endswith("\n") else text + "\n")
        self._fh.flush()

    def section(self, title: str) -> None:
        """A heading, so the log reads like a table of contents of the steps."""
        self.write(f"\n==== [{time.monotonic() - self._start:7.1f}s] {title}")

    def run(
        self,
        cmd: Sequence[str | os.PathLike[str]],
        *,
        step: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        shell: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Run `cmd`, appending its output to the log; return the output.

        `env` is the complete environment; the log records the variables that differ from ours.
        A non-zero exit raises BuildError(step, first error line of this command's output).
        """
        shown = cmd[0] if shell else shlex.join(str(c) for c in cmd)
        self.section(f"{step}: {shown}")
        if env is not None:
            for key in sorted(env):
                if os.environ.get(key) != env[key]:
                    self.write(f"  {key}={env[key]}")
        self.write(f"  cwd={cwd or os.getcwd()}")
        args = cmd[0] if shell else [str(c) for c in cmd]
        start = self.path.stat().st_size
        try:
            # The output streams straight into the log file: a chatty build costs no memory.
            proc = subprocess.run(
                args,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                shell=shell,
                stdout=self._fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            self.write(f"  -> timed out after {timeout:.0f}s")
            raise BuildError(step, f"timed out after {timeout:.0f}s", self.path) from None
        except OSError as exc:
            self.write(str(exc))
            raise BuildError(step, str(exc), self.path) from None
        out = self._since(start)
        self.write(f"  -> exit {proc.returncode}")
        if proc.returncode != 0:
            summary = first_error_line(out) or f"exit status {proc.returncode}"
            raise BuildError(step, summary, self.path)
        return out

    def _since(self, offset: int) -> str:
        """What the log gained after `offset` (the last command's output)."""
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")

    def text(self) -> str:
        return self.path.read_text(errors="replace")
