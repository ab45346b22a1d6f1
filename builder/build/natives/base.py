"""What every native build system module shares: the recipe entry, the error, the command runner and
the context one library build gets (`BuildContext`), and the `BuildSystem` record a module registers
in `builder.build.natives.registry`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from builder.common.buildlog import BuildError, BuildLog

DEFAULT_SUITE = "bookworm"
GNU_TRIPLES = {"aarch64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
# macOS targets (macosx_*): what autotools' --host and OpenSSL's Configure call them.
DARWIN_TRIPLES = {"arm64": "aarch64-apple-darwin", "x86_64": "x86_64-apple-darwin"}
DARWIN_OPENSSL = {"arm64": "darwin64-arm64-cc", "x86_64": "darwin64-x86_64-cc"}


def is_macos(target: str) -> bool:
    """macosx_* targets: Mach-O dylibs built with zig's macOS target, repaired by delocate."""
    return target.startswith("macosx_")


DEBIAN_ARCHES = {"aarch64": "arm64", "x86_64": "amd64"}

Say = Callable[[str], None]


class NativeBuildError(RuntimeError):
    """A native library could not be fetched, built or installed; names the first error and the log."""

    def __init__(self, message: str, *, log: Path | None = None, first_error: str = "") -> None:
        super().__init__(message)
        self.log = log
        self.first_error = first_error


class Toolchain(Protocol):
    """What natives needs of `builder.build.toolchain.host.CrossToolchain`."""

    def env(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class NativeSpec:
    """One `[[native]]` entry, whatever object the recipe loader gives (see `spec_of`)."""

    name: str
    source: str
    build_system: str
    sha256: str = ""
    args: tuple[str, ...] = ()
    base: Path | None = None  # folder that relative local sources are resolved against


class Runner:
    """Runs a library's build commands through the one build log runner (builder.common.buildlog),
    in the library's environment, and turns a failure into a NativeBuildError naming the log."""

    def __init__(self, log: BuildLog, env: dict[str, str], say: Say) -> None:
        self.log, self.env, self.say = log, env, say

    def note(self, text: str) -> None:
        self.log.write(text)

    def __call__(
        self, cmd: Sequence[str], cwd: Path, extra: Mapping[str, str] | None = None
    ) -> None:
        try:
            self.log.run(cmd, step=shlex.join(cmd[:2]), env={**self.env, **(extra or {})}, cwd=cwd)
        except BuildError as e:
            raise NativeBuildError(
                f"{e.step} failed: {e.summary}; full log: {self.log.path}",
                log=self.log.path,
                first_error=e.summary,
            ) from None


@dataclass(frozen=True)
class BuildContext:
    """Everything one library build needs. Install into `final` through `stage` (DESTDIR)."""

    spec: NativeSpec
    src: Path | None  # the unpacked source tree (None for systems that need no source)
    final: Path  # the prefix the library is configured for
    stage: Path  # DESTDIR: the install lands in stage/<final without its anchor>
    run: Runner
    toolchain: Toolchain
    arch: str
    toolchain_file: Path  # a CMake toolchain file searching the earlier prefixes only
    roots: tuple[Path, ...]  # the earlier libraries' prefixes
    work: Path  # a scratch folder of this build
    target: str = ""  # the platform tag (macosx_* builds Mach-O for the Mac)

    @property
    def macos(self) -> bool:
        return is_macos(self.target)

    @property
    def host_triple(self) -> str:
        """What autotools' --host names the target: aarch64-linux-gnu, aarch64-apple-darwin ..."""
        return DARWIN_TRIPLES[self.arch] if self.macos else GNU_TRIPLES[self.arch]

    @property
    def env(self) -> dict[str, str]:
        return self.run.env

    @property
    def staged(self) -> Path:
        return self.stage / self.final.relative_to(self.final.anchor)

    @property
    def dest_arg(self) -> str:
        # As a make argument: Makefiles that set DESTDIR= themselves (OpenSSL's) ignore the env.
        return f"DESTDIR={self.stage}"

    @property
    def source(self) -> Path:
        assert self.src is not None, f"{self.spec.build_system} needs a source tree"
        return self.src


@dataclass(frozen=True)
class BuildSystem:
    """One way to build a native library; each module of builder.build.natives defines `SYSTEM`."""

    name: str  # the recipe's `build-system` value
    build: Callable[[BuildContext], None]
    host_packages: tuple[str, ...] = ()  # host (x86_64) Debian packages it runs
    needs_source: bool = True  # False: `source` names binary packages, not a source tree


def jobs() -> str:
    return str(os.cpu_count() or 2)


def ensure_host(packages: Sequence[str], ctx: BuildContext) -> None:
    """Install host packages a build system needs only in some cases (autoreconf, ...)."""
    from builder.build.toolchain.host import ToolchainError, ensure_host_packages

    try:
        ensure_host_packages(list(packages), ctx.run.say)
    except ToolchainError as e:
        raise NativeBuildError(f"native library {ctx.spec.name}: {e}") from e
