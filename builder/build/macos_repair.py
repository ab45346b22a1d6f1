"""Repair a macOS wheel on Linux: delocate grafts the native libraries it links into `.dylibs`.

`delocate-wheel --require-archs <arch>` copies every library an extension loads from outside the
system (the prefixes of builder.deps, named by absolute install names or found on
DYLD_LIBRARY_PATH) into `<package>/.dylibs`, rewrites the load commands to `@loader_path/...`,
drops build-folder rpaths and re-signs what it changed. Its Apple tools are LLVM wrappers
(builder.build.toolchain.macho_tools); every re-signed file is verified by the checker's signature verifier, and
the whole wheel goes through the checker's gate after this step.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import parse_wheel_filename

from builder.build.toolchain.macho_tools import tools_bin
from builder.build.toolchain.macos import mac_target
from builder.common.buildlog import BuildError, BuildLog
from builder.common.targets import supported_tags


def repair_macos_wheel(
    raw: Path,
    python: str,
    target: str,
    out: Path,
    lib_dirs: Sequence[Path],
    log: BuildLog,
) -> Path:
    """delocate-wheel `raw` into `out`; the result must still install on (python, target)."""
    arch = mac_target(target).arch
    out.mkdir(parents=True, exist_ok=True)
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(tools_bin()), str(venv_bin), env.get("PATH", "")])
    env["DYLD_LIBRARY_PATH"] = os.pathsep.join(str(d) for d in lib_dirs)
    delocate = venv_bin / "delocate-wheel"
    cmd: list[str | Path] = [delocate if delocate.exists() else "delocate-wheel"]
    cmd += ["--require-archs", arch, "-w", out, "-v", raw]
    log.run(cmd, step="repair", env=env)
    wheels = sorted(out.glob("*.whl"))
    if not wheels:  # nothing to graft: delocate leaves the wheel where it was
        wheels = [raw]
    if len(wheels) != 1:
        raise BuildError("repair", f"delocate wrote {len(wheels)} wheels to {out}", log.path)
    repaired = wheels[0]
    tags = parse_wheel_filename(repaired.name)[3]
    if not tags & supported_tags(python, target):
        raise BuildError(
            "repair",
            f"repaired wheel is {'.'.join(sorted({t.platform for t in tags}))}, which does not "
            f"install on {target} (a grafted library needs a newer macOS?)",
            log.path,
        )
    return repaired
