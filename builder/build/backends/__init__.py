"""Build backends: one interface, one module each (`cross`, `emulated`, later `cibuildwheel`).

A backend turns an sdist into a raw, unrepaired wheel for one Python and one target. Everything around
that step (fetch, native dependencies, repair, check, test, results) is shared in `builder.build.pipeline`, so a
backend is small and a new one is a new file plus one line in BACKENDS.

Every backend writes what it runs, and everything those commands print, to a `BuildLog`: one file per
build, kept after the build, whose path a failure reports with the first real error line.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from builder.common.buildlog import BuildLog

if TYPE_CHECKING:
    from builder.recipes.recipe import BuildOptions

# name -> "module:Class"; imported on first use so a backend's dependencies load only when used.
BACKENDS: dict[str, str] = {
    "cross": "builder.build.backends.cross:CrossBackend",
    "emulated": "builder.build.backends.emulated:EmulatedBackend",
}


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
