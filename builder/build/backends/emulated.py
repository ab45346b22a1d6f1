"""The emulated backend: a native aarch64 build under qemu-user, in a Debian arm64 chroot.

This is what cibuildwheel + QEMU users get, without a container engine: the sdist is compiled by
Debian's arm64 gcc and built by Debian's arm64 CPython, every program running under
qemu-aarch64-static through a binfmt_misc instance private to a user namespace (builder.build.toolchain.namespace).
It builds what cross-compiling cannot: builds that run the programs they just compiled.

Steps (the pipeline in builder.build.pipeline does fetch, native deps, repair, check and test around them):
1. the cached root filesystem for the Python version (builder.build.toolchain.rootfs: bookworm 3.11, trixie 3.13);
2. the sdist unpacked on the host into workdir/src (tarfile's "data" filter: no foreign owners);
3. the build requirements ([build-system] requires, recipe build-requires, pip, wheel) downloaded on
   the host as aarch64/pure wheels into a cached folder: the chroot has no network set up, and needs
   none (no resolv.conf, no CA certificates);
4. inside the chroot: a venv on tmpfs, the requirements installed offline (--no-index
   --find-links), before-build, then `pip wheel --no-deps --no-build-isolation` into workdir/out.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import parse_wheel_filename

from builder.build.backends import Backend
from builder.build.toolchain.namespace import check_support, ensure_qemu_static, rootfs_command
from builder.build.toolchain.rootfs import (
    SUITE_FOR_PYTHON,
    SUITE_GLIBC,
    RootfsError,
    rootfs,
    suite_for,
)
from builder.common.atomic import file_lock
from builder.common.buildlog import BuildError, BuildLog
from builder.common.paths import cache_dir
from builder.common.sdist import SdistError, build_requirements, unpack
from builder.common.targets import TargetError, parse_target
from builder.recipes.recipe import BuildOptions

# Always present: pip runs the build, wheel serves setuptools versions that still ask for it.
TOOL_REQUIRES = ("pip", "wheel")
BUILD_TIMEOUT = 3600.0
OFFLINE = "--no-index --disable-pip-version-check --no-cache-dir"


class EmulatedBackend(Backend):
    name = "emulated"

    def available(self, python: str, target: str) -> str | None:
        try:
            t = parse_target(target)
        except TargetError as exc:
            return f"{target}: {exc}"
        if t.os != "manylinux" or t.arch != "aarch64":
            return f"the emulated backend builds manylinux aarch64 only, not {target}"
        if python not in SUITE_FOR_PYTHON:
            have = ", ".join(sorted(SUITE_FOR_PYTHON))
            return f"no Debian arm64 CPython {python} for the emulated backend (have {have})"
        support = check_support()
        if not support.ok and not _only_qemu_missing(support.reasons):
            return "; ".join(support.reasons)
        return None

    def build(
        self,
        sdist: Path,
        python: str,
        target: str,
        options: BuildOptions,
        workdir: Path,
        log: BuildLog,
    ) -> Path:
        if reason := self.available(python, target):
            raise BuildError("emulated", reason, log.path)
        cmd, out = prepare(sdist, python, options, workdir, log)
        log.run(cmd, step="compile (emulated)", timeout=BUILD_TIMEOUT)
        return built_wheel(out, log)


def _only_qemu_missing(reasons: Sequence[str]) -> bool:
    """qemu-user-static is installed on first use, so its absence alone is no reason."""
    return all("qemu-aarch64-static" in r for r in reasons)


def prepare(
    sdist: Path,
    python: str,
    options: BuildOptions,
    workdir: Path,
    log: BuildLog,
    extra_packages: Sequence[str] = (),
) -> tuple[list[str], Path]:
    """Everything before the compile: root filesystem, unpacked sdist, build env.

    Returns the host command that builds the wheel in the chroot, and the folder it lands in.
    """
    log.section(f"emulated: {sdist.name} for cp{python.replace('.', '')}")
    ensure_qemu_static()
    try:
        root = rootfs(python, extra=extra_packages)
    except (RootfsError, RuntimeError) as exc:
        raise BuildError("rootfs", str(exc), log.path) from None
    log.write(f"  rootfs {root}")
    try:
        src = unpack(sdist, workdir / "src")
    except SdistError as exc:
        raise BuildError("unpack", str(exc), log.path) from None
    requires = [*TOOL_REQUIRES, *build_requires(src), *options.build_requires]
    env = build_env(root, python, download_requirements(requires, python, log), log)
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    script = build_script(python, options, f"/work/{src.relative_to(workdir)}")
    cmd = rootfs_command(
        root,
        ["/bin/sh", "-c", script],
        binds={"/work": workdir},
        ro_binds={"/env": env},
        # PATH stays the root filesystem's: the pipeline's names host folders (config tools).
        env={k: v for k, v in options.environment.items() if k != "PATH"},
        cwd="/work",
    )
    return cmd, out


def built_wheel(out: Path, log: BuildLog) -> Path:
    built = sorted(out.glob("*.whl"))
    if len(built) != 1:
        raise BuildError("compile (emulated)", f"{len(built)} wheels in {out}", log.path)
    return built[0]


def build_requires(project: Path) -> list[str]:
    """The project's static build requirements (pyproject.toml, or PEP 517's default)."""
    try:
        return build_requirements(project)
    except SdistError as exc:
        raise BuildError("requirements", str(exc)) from None


def wheels_dir(python: str) -> Path:
    return cache_dir() / "emulated" / "wheels" / f"cp{python.replace('.', '')}-aarch64"


def platform_args(major: int, minor: int) -> list[str]:
    """`--platform` for every manylinux tag the rootfs's glibc (major.minor) can load, newest
    first, legacy aliases included: pip's expansion of one tag missed build tools' wheels."""
    tags = [f"manylinux_{major}_{m}_aarch64" for m in range(minor, 16, -1)] + [
        "manylinux2014_aarch64"
    ]
    return [arg for tag in tags for arg in ("--platform", tag)]


def download_requirements(requirements: Sequence[str], python: str, log: BuildLog) -> list[Path]:
    """Download `requirements` and their dependencies as wheels for aarch64 CPython `python`, on
    the host; return the exact files pip chose (the build env is made of these and nothing else)."""
    dest = wheels_dir(python)
    dest.mkdir(parents=True, exist_ok=True)
    major, minor = SUITE_GLIBC[suite_for(python)]
    nodot = python.replace(".", "")
    cmd = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar=off",
        "--only-binary=:all:", *platform_args(major, minor),
        "--python-version", python, "--implementation", "cp", "--abi", f"cp{nodot}",
        "--dest", str(dest), *requirements,
    ]  # fmt: skip
    # One download at a time into the shared folder: pip rewrites a file it is downloading again,
    # under the feet of a build env being installed from it; a file already there it leaves alone.
    with file_lock(dest / ".download.lock"):
        out = log.run(cmd, step="build requirements (host download)", timeout=900)
    # "Saved <path>" / "File was already downloaded <path>": one line per chosen file.
    files = sorted(
        {
            Path(m)
            for m in re.findall(
                r"^\s*(?:Saved|File was already downloaded) (\S+\.whl)\s*$", out, re.M
            )
        }
    )
    if not files:
        raise BuildError("build requirements", f"pip download chose no wheels for {requirements}")
    return [dest / f.name for f in files]


def build_env(root: Path, python: str, wheels: Sequence[Path], log: BuildLog) -> Path:
    """A venv inside the chroot's view holding exactly `wheels`, cached and reused read-only.

    Installing pip and setuptools under qemu (byte-compiling them included) costs ~30 s: a fresh env
    per build would spend more time there than in the compiler. The env is always mounted at /env,
    so its absolute paths (shebangs, pyvenv.cfg) stay right after the rename into place.
    """
    key = hashlib.sha256("\n".join([root.name, *(w.name for w in wheels)]).encode()).hexdigest()
    dest = cache_dir() / "emulated" / "envs" / f"cp{python.replace('.', '')}-{key[:16]}"
    if (dest / ".complete").exists():
        log.write(f"  build env {dest} (cached)")
        return dest
    staging = dest.with_name(f"{dest.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    pip = next(w for w in wheels if parse_wheel_filename(w.name)[0] == "pip")
    files = " ".join(shlex.quote(f"/wheels/{w.name}") for w in wheels)
    script = (
        f"set -eux\npython{python} -m venv --without-pip --clear /env\n"
        f"/env/bin/python /wheels/{pip.name}/pip install {OFFLINE} --no-deps {files}\n"
    )
    cmd = rootfs_command(
        root,
        ["/bin/sh", "-c", script],
        binds={"/env": staging},
        ro_binds={"/wheels": wheels_dir(python)},
    )
    try:
        log.run(cmd, step="build env (emulated)", timeout=1800)
        (staging / ".complete").write_text("\n".join(w.name for w in wheels) + "\n")
        try:
            os.replace(staging, dest)
        except OSError:  # another build put the same env there first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def build_script(python: str, options: BuildOptions, project: str) -> str:
    """The shell script run inside the chroot: before-build, then pip wheel into /work/out."""
    q = shlex.quote
    settings = []
    for key, value in options.config_settings.items():
        for v in [value] if isinstance(value, str) else value:
            settings.append(q(f"--config-settings={key}={v}"))
    lines = [
        "set -eux",
        "uname -m",
        "export PATH=/env/bin:$PATH VIRTUAL_ENV=/env",
        f"cd {q(project)}",
    ]
    if options.before_build:  # cibuildwheel's placeholders
        lines.append(
            options.before_build.replace("{project}", project).replace("{package}", project)
        )
    lines.append(
        f"python -m pip wheel {OFFLINE} --no-deps --no-build-isolation --wheel-dir /work/out "
        + " ".join([*settings, "."])
    )
    return "\n".join(lines) + "\n"
