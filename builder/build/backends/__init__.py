"""Build backends: one interface, one module each (`cross`, `emulated`, later `cibuildwheel`).

A backend turns an sdist into a raw, unrepaired wheel for one Python and one target. Everything around
that step (fetch, native dependencies, repair, check, test, results) is shared in `builder.build.pipeline`, so a
backend is small and a new one is a new file plus one line in BACKENDS.

Every backend writes what it runs, and everything those commands print, to a `BuildLog`: one file per
build, kept after the build, whose path a failure reports with the first real error line.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from builder.recipes.recipe import BuildOptions

# name -> "module:Class"; imported on first use so a backend's dependencies load only when used.
BACKENDS: dict[str, str] = {
    "cross": "builder.build.backends.cross:CrossBackend",
    "emulated": "builder.build.backends.emulated:EmulatedBackend",
}


class BuildError(RuntimeError):
    """A build step failed. `summary` is the first real error line; `log` the full log's path."""

    def __init__(self, step: str, summary: str, log: Path | None = None) -> None:
        where = f" (log: {log})" if log else ""
        super().__init__(f"{step}: {summary}{where}")
        self.step = step
        self.summary = summary
        self.log = log


class Backend(ABC):
    """Turns an sdist into a raw wheel for (python, target)."""

    name: str = ""

    @abstractmethod
    def build(
        self,
        sdist: Path,
        python: str,
        target: str,
        options: BuildOptions,
        workdir: Path,
        log: BuildLog,
    ) -> Path:
        """Build `sdist` for CPython `python` ("3.11") and platform tag `target`; return the wheel.

        `workdir` is an empty folder the backend owns for this build. `options.environment` holds
        every variable the build must see: the pipeline puts its own there before the recipe's
        (SOURCE_DATE_EPOCH; native dependency prefixes: CPPFLAGS, LDFLAGS, PKG_CONFIG_PATH).
        The backend applies them, runs `options.before_build`, honours `options.config_settings`.
        Failures raise BuildError (use `log.run`, which does that with the first error line).
        """

    def available(self, python: str, target: str) -> str | None:
        """None when this backend can build (python, target) here, else the reason it cannot."""
        return None


def get_backend(name: str) -> Backend:
    """The backend registered as `name` (KeyError names the known ones)."""
    if name not in BACKENDS:
        raise KeyError(f"unknown build backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    module, cls = BACKENDS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except ImportError as exc:
        raise KeyError(f"build backend {name!r} is not available here: {exc}") from None


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
]
_NOISE = re.compile(r"(subprocess-exited-with-error|legacy-install-failure|note: This error)")


def first_error_line(text: str) -> str | None:
    """The first line of `text` that states a real error, skipping pip's wrapper noise."""
    lines = [ln.strip() for ln in text.splitlines()]
    for pattern in _ERROR_PATTERNS:
        for line in lines:
            if line and not _NOISE.search(line) and pattern.search(line):
                return line[:300]
    return None


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
        try:
            proc = subprocess.run(
                args,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                shell=shell,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else ""
            self.write(out)
            raise BuildError(step, f"timed out after {timeout:.0f}s", self.path) from None
        except OSError as exc:
            self.write(str(exc))
            raise BuildError(step, str(exc), self.path) from None
        self.write(proc.stdout)
        self.write(f"  -> exit {proc.returncode}")
        if proc.returncode != 0:
            summary = first_error_line(proc.stdout) or f"exit status {proc.returncode}"
            raise BuildError(step, summary, self.path)
        return proc.stdout

    def text(self) -> str:
        return self.path.read_text(errors="replace")
