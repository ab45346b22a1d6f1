"""One build log and the one way to run a build command: every command, its environment changes and its
output go to one file per build, kept after the build; a failure raises `BuildError` with the step and
the first real error line of that command's output (`first_error_line`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
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


# Lines that state the real cause, most specific first. A compiler's "error:" beats the
# "error: command '...' failed" and "subprocess-exited-with-error" lines that follow it.
_ERROR_PATTERNS = [
    re.compile(r"^\S+:\d+(:\d+)?: (fatal )?error: .+"),  # file.c:3:5: error: ...
    re.compile(r"^\S+\.(pyx|pxd|pxi):\d+:\d+: .+"),  # Cython: file.pyx:3:5: message
    re.compile(r"\b(fatal error|undefined reference to|undefined symbol)\b.*", re.I),
    re.compile(r"^ld(\.lld)?: error: .+"),
    re.compile(r"^CMake Error.*"),
    re.compile(r"^(\w+\.)*\w*(Error|Exception): .+"),  # Python tracebacks' last line
    re.compile(r"^error: (?!command '|subprocess-exited|metadata-generation).+", re.I),
    re.compile(r"^E: .+"),
    re.compile(r"^configure: error: .+"),
    re.compile(r"No rule to make target .+"),
    re.compile(r"\*\*\* .*Error \d+"),
    re.compile(r"\bcommand not found\b"),
]
_NOISE = re.compile(r"(subprocess-exited-with-error|legacy-install-failure|note: This error)")


def first_error_line(text: str) -> str | None:
    """The first line of `text` that states a real error, skipping pip's wrapper noise."""
    found = error_lines(text, limit=1)
    return found[0] if found else None


def error_lines(text: str, limit: int = 5) -> list[str]:
    """Up to `limit` distinct lines that state real errors, the most specific kind first."""
    lines = [ln.strip() for ln in text.splitlines()]
    found: list[str] = []
    for pattern in _ERROR_PATTERNS:
        for line in lines:
            if line and not _NOISE.search(line) and pattern.search(line):
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
