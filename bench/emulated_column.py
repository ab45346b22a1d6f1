"""The emulated column of bench/build_bench.py: the same sdist built natively for aarch64 under qemu.

`run_emulated(prep, python, workdir, log) -> (wheel, seconds)` has the signature of the bench's other
columns. As there, only the build command is timed: `pip wheel --no-deps --no-build-isolation` in
the Debian arm64 chroot (builder.build.backends.emulated), with its cached root filesystem and build env
made beforehand (the bench's warm-up run makes them); the namespace, binfmt_misc and mount set-up
of every run is part of the time, as it is part of every emulated build.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from builder.build.backends.emulated import built_wheel, prepare
from builder.common.buildlog import BuildLog
from builder.recipes.recipe import BuildOptions

# Debian arm64 -dev packages a bench sdist links to, installed into its root filesystem (the
# emulated counterpart of the host's libyaml-dev natively and the arm64 sysroot when cross).
EXTRA_PACKAGES = {"pyyaml": ("libyaml-dev",)}


def run_emulated(prep: Any, python: str, workdir: Path, log: BuildLog) -> tuple[Path, float]:
    """Build `prep.path` (a bench Prepared) in the emulated backend's chroot; time the build."""
    options = BuildOptions(backend="emulated", environment=dict(prep.sdist.env))
    extra = EXTRA_PACKAGES.get(prep.sdist.name, ())
    cmd, out = prepare(prep.path, python, options, workdir, log, extra_packages=extra)
    start = time.perf_counter()
    log.run(cmd, step=f"bench {prep.sdist.name} (emulated)", cwd=workdir)
    elapsed = time.perf_counter() - start
    return built_wheel(out, log), elapsed
