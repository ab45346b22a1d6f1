"""The cibuildwheel backend: native arm64 runners (Linux aarch64 in a manylinux/musllinux container,
macOS arm64) build the planned wheels with cibuildwheel, from a recipe translated into its options.

`cibuildwheel_runs(recipe, jobs)` groups a recipe's planned jobs into cibuildwheel invocations (one
sdist, one platform, one container image or macOS deployment target each) and gives each the exact
`CIBW_*` environment; `run_cibuildwheel(run, sdist, output_dir)` runs one where it can run. Recipe keys
carry cibuildwheel's names and meanings (README: "The farm at scale" has the mapping table).
"""

from __future__ import annotations

import hashlib
import os
import platform as host_platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

from builder.common.targets import Target, cibw_identifier, parse_python, parse_target
from builder.plan.planner import Job
from builder.recipes.recipe import Recipe

# Container images cibuildwheel knows by name (its resources/pinned_docker_images.cfg), newest last,
# with the glibc / musl each one builds against. A wheel built in an image runs on that libc or newer,
# so a target's floor picks the newest image that is not newer than the floor.
MANYLINUX_IMAGES: tuple[tuple[tuple[int, int], str], ...] = (
    ((2, 17), "manylinux2014"),
    ((2, 28), "manylinux_2_28"),
    ((2, 34), "manylinux_2_34"),
)
MUSLLINUX_IMAGES: tuple[tuple[tuple[int, int], str], ...] = (((1, 2), "musllinux_1_2"),)

# The native GitHub Actions runner for each cibuildwheel platform and architecture.
RUNNERS = {("linux", "aarch64"): "ubuntu-24.04-arm", ("macos", "arm64"): "macos-14"}

DELOCATE_COMMAND = "delocate-wheel --require-archs {archs} -w {{dest_dir}} -v {{wheel}}"


class CibwError(Exception):
    """A recipe or plan cannot be translated for cibuildwheel; the message names the recipe."""


class CibwUnavailable(CibwError):
    """cibuildwheel cannot run here (no container engine, not a Mac, not a native runner)."""


@dataclass(frozen=True)
class CibwRun:
    """One cibuildwheel invocation: one sdist, one platform, one image or deployment target."""

    id: str  # stable: "<project>-<version>-<platform>-<image or macosx_X_Y>"
    project: str
    version: str
    platform: str  # "linux" | "macos"
    archs: str  # "aarch64" | "arm64"
    identifiers: tuple[str, ...]
    env: Mapping[str, str]
    jobs: tuple[Job, ...]
    notes: tuple[str, ...] = field(default=())  # what the translation could not carry over

    @property
    def runner(self) -> str:
        return RUNNERS.get((self.platform, self.archs), "")

    @property
    def sdist(self) -> Job:
        return self.jobs[0]

    def process_env(self) -> dict[str, str]:
        """This process's environment without stray CIBW_* settings, plus the run's options."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
        return base | dict(self.env)

    def command(self, package: Path, output_dir: Path) -> list[str]:
        return [
            *_cibuildwheel_command(),
            "--platform",
            self.platform,
            "--archs",
            self.archs,
            "--output-dir",
            str(output_dir),
            str(package),
        ]

    def matrix_entry(self) -> dict[str, str]:
        """One GitHub Actions matrix `include:` entry (strings only)."""
        job = self.sdist
        return {
            "id": self.id,
            "runner": self.runner,
            "project": self.project,
            "version": self.version,
            "platform": self.platform,
            "archs": self.archs,
            "identifiers": " ".join(self.identifiers),
            "sdist_url": job.sdist_url,
            "sdist_sha256": job.sdist_sha256,
            "sdist_filename": job.sdist_filename,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.matrix_entry() | {
            "identifiers": list(self.identifiers),
            "env": dict(self.env),
            "jobs": [j.to_dict() for j in self.jobs],
            "notes": list(self.notes),
        }


def _cibuildwheel_command() -> list[str]:
    exe = Path(sys.executable).with_name("cibuildwheel")
    if exe.exists():
        return [str(exe)]
    if found := shutil.which("cibuildwheel"):
        return [found]
    return [sys.executable, "-m", "cibuildwheel"]


def _platform_of(target: Target) -> str:
    return "macos" if target.os == "macosx" else "linux"


def linux_image(target: Target) -> str:
    """The cibuildwheel image name for a manylinux/musllinux target (from its libc floor)."""
    table = MANYLINUX_IMAGES if target.os == "manylinux" else MUSLLINUX_IMAGES
    fitting = [name for floor, name in table if floor <= target.version]
    if not fitting:
        oldest = ".".join(map(str, table[0][0]))
        raise CibwError(
            f"{target.tag}: no {target.os} image for cibuildwheel builds against a libc this old "
            f"(oldest: {oldest})"
        )
    return fitting[-1]


def format_environment(env: Mapping[str, str]) -> str:
    """CIBW_ENVIRONMENT as cibuildwheel writes a TOML table: `K="v"`, values may use $VARS."""
    for key, value in env.items():
        if '"' in value:
            raise CibwError(
                f"environment {key}: a double quote cannot pass through CIBW_ENVIRONMENT"
            )
    return " ".join(f'{k}="{v}"' for k, v in env.items())


def format_config_settings(settings: Mapping[str, str | Sequence[str]]) -> str:
    """CIBW_CONFIG_SETTINGS as cibuildwheel writes a TOML table: `k=v` pairs, shell-quoted."""
    pairs: list[str] = []
    for key, value in settings.items():
        values = [value] if isinstance(value, str) else list(value)
        pairs.extend(f"{key}={shlex.quote(v)}" for v in values)
    return " ".join(pairs)


def cibw_test_command(recipe: Recipe) -> str:
    """The recipe's test-command, else a `python -c` that imports the modules and runs the call."""
    if recipe.test.test_command:
        return recipe.test.test_command
    code = "; ".join(
        [*(f"import {m}" for m in recipe.test.imports), *filter(None, [recipe.test.call])]
    )
    return f"python -c {shlex.quote(code)}" if code else ""


def _recipe_env(recipe: Recipe, name: str) -> tuple[dict[str, str], list[str]]:
    opts = recipe.build
    if opts.build_requires:
        raise CibwError(
            f"{recipe.path}: [build] build-requires has no cibuildwheel equivalent for an isolated "
            "build; use the cross or emulated backend, or add the requirement to the sdist"
        )
    env: dict[str, str] = {}
    notes: list[str] = []
    if opts.before_all:
        env["CIBW_BEFORE_ALL"] = opts.before_all
    if opts.before_build:
        env["CIBW_BEFORE_BUILD"] = opts.before_build
    if opts.environment:
        env["CIBW_ENVIRONMENT"] = format_environment(opts.environment)
    if opts.config_settings:
        env["CIBW_CONFIG_SETTINGS"] = format_config_settings(opts.config_settings)
    if recipe.test.test_requires:
        env["CIBW_TEST_REQUIRES"] = " ".join(shlex.quote(r) for r in recipe.test.test_requires)
    if command := cibw_test_command(recipe):
        env["CIBW_TEST_COMMAND"] = command
    if recipe.native and not opts.before_all:
        names = ", ".join(lib.name for lib in recipe.native)
        notes.append(
            f"{name}: [[native]] {names} are built by the cross/emulated backends only; under "
            "cibuildwheel a [build] before-all must install them"
        )
    return env, notes


def cibuildwheel_runs(recipe: Recipe, jobs: Sequence[Job]) -> list[CibwRun]:
    """Translate a recipe and its planned jobs into cibuildwheel invocations with exact CIBW_BUILD."""
    name = canonicalize_name(recipe.name)
    mine = [j for j in jobs if canonicalize_name(j.project) == name]
    if not mine:
        return []
    base_env, notes = _recipe_env(recipe, str(recipe.path))
    groups: dict[tuple[str, str, str, str], list[Job]] = {}
    for job in mine:
        target = parse_target(job.target)
        parse_python(job.python)
        plat = _platform_of(target)
        if target.os == "macosx":
            # The deployment target the recipe asks for sets the wheel's macOS floor.
            flavour = f"macosx_{target.version[0]}_{target.version[1]}"
        else:
            flavour = linux_image(target)
        groups.setdefault((job.version, plat, target.arch, flavour), []).append(job)

    runs: list[CibwRun] = []
    for (version, plat, arch, flavour), group in sorted(groups.items()):
        shas = {j.sdist_sha256 for j in group}
        if len(shas) != 1:
            raise CibwError(
                f"{recipe.path}: {name} {version} planned with {len(shas)} different sdists"
            )
        identifiers = tuple(sorted({cibw_identifier(j.python, j.target) for j in group}))
        env: dict[str, str] = {
            "CIBW_PLATFORM": plat,
            "CIBW_ARCHS": arch,
            "CIBW_BUILD": " ".join(identifiers),
            "CIBW_BUILD_VERBOSITY": "1",
            **base_env,
        }
        if plat == "linux":
            kind = "MANYLINUX" if flavour.startswith("manylinux") else "MUSLLINUX"
            env[f"CIBW_{kind}_{arch.upper()}_IMAGE"] = flavour
        else:
            major, minor = parse_target(group[0].target).version
            env["MACOSX_DEPLOYMENT_TARGET"] = f"{major}.{minor}"
            env["CIBW_REPAIR_WHEEL_COMMAND_MACOS"] = DELOCATE_COMMAND.format(archs=arch)
        runs.append(
            CibwRun(
                id=f"{name}-{version}-{plat}-{flavour}",
                project=name,
                version=version,
                platform=plat,
                archs=arch,
                identifiers=identifiers,
                env=env,
                jobs=tuple(group),
                notes=tuple(notes),
            )
        )
    return runs


def github_env(env: Mapping[str, str]) -> str:
    """The lines to append to $GITHUB_ENV (multi-line values use the heredoc form)."""
    out: list[str] = []
    for key, value in env.items():
        if "\n" in value:
            marker = "WHEELFARM_" + hashlib.sha256(value.encode()).hexdigest()[:16]
            out.append(f"{key}<<{marker}\n{value}\n{marker}")
        else:
            out.append(f"{key}={value}")
    return "\n".join(out) + "\n"


def _container_engine() -> str | None:
    """A container engine whose daemon answers, or None."""
    for engine in ("docker", "podman"):
        if shutil.which(engine):
            try:
                ok = (
                    subprocess.run([engine, "info"], capture_output=True, timeout=30).returncode
                    == 0
                )
            except subprocess.TimeoutExpired:
                ok = False
            if ok:
                return engine
    return None


def unavailable_reason(run: CibwRun) -> str | None:
    """None when `run` can run on this machine, else why not (cibuildwheel is for native runners)."""
    machine = host_platform.machine().lower()
    if run.platform == "macos":
        if sys.platform != "darwin" or machine != "arm64":
            return (
                f"{run.id}: cibuildwheel builds macOS arm64 wheels on an arm64 Mac "
                f"(a {run.runner} runner); this is {sys.platform} {machine}"
            )
        return None
    if not sys.platform.startswith("linux") or machine not in ("aarch64", "arm64"):
        return (
            f"{run.id}: the cibuildwheel backend runs on a native Linux aarch64 machine "
            f"(a {run.runner} runner); this is {sys.platform} {machine}: use the cross or emulated backend"
        )
    if _container_engine() is None:
        return f"{run.id}: cibuildwheel needs a running container engine (docker or podman); none answers here"
    return None


def selected_identifiers(run: CibwRun, package: Path) -> list[str]:
    """What the installed cibuildwheel would build for `run` on `package` (sdist or folder)."""
    cmd = [*_cibuildwheel_command(), "--platform", run.platform, "--archs", run.archs]
    proc = subprocess.run(
        [*cmd, "--print-build-identifiers", str(package)],
        env=run.process_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise CibwError(f"{run.id}: cibuildwheel rejects the options: {proc.stderr.strip()}")
    return proc.stdout.split()


def check_selection(run: CibwRun, package: Path) -> None:
    """Fail unless cibuildwheel selects exactly the planned identifiers (it silently skips unknown ones)."""
    selected = selected_identifiers(run, package)
    if selected != list(run.identifiers):
        missing = sorted(set(run.identifiers) - set(selected))
        extra = sorted(set(selected) - set(run.identifiers))
        raise CibwError(
            f"{run.id}: the installed cibuildwheel selects {' '.join(selected) or 'nothing'} instead "
            f"of the planned {' '.join(run.identifiers)}"
            + (f" (it cannot build {', '.join(missing)})" if missing else "")
            + (f" (unplanned: {', '.join(extra)})" if extra else "")
        )


def run_cibuildwheel(
    run: CibwRun, sdist: Path, output_dir: Path, *, log: Path | None = None
) -> list[Path]:
    """Build `run` from `sdist` (verified against the plan's sha256); return the repaired wheels.

    The build sees only the `CIBW_*` options added to this process's environment: callers must not
    have secrets in their environment (the nightly workflow keeps the index token in the publish job).
    """
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != run.sdist.sdist_sha256:
        raise CibwError(f"{sdist}: sha256 {digest} is not the planned {run.sdist.sdist_sha256}")
    if reason := unavailable_reason(run):
        raise CibwUnavailable(reason)
    check_selection(run, sdist)
    output_dir.mkdir(parents=True, exist_ok=True)
    before = set(output_dir.glob("*.whl"))
    cmd = run.command(sdist, output_dir)
    env = run.process_env()
    if log is None:
        proc = subprocess.run(cmd, env=env)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n".encode())
            fh.flush()
            proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        where = f" (log: {log})" if log else ""
        raise CibwError(f"{run.id}: cibuildwheel exited with status {proc.returncode}{where}")
    wheels = sorted(set(output_dir.glob("*.whl")) - before)
    built = {parse_wheel_filename(w.name)[0] for w in wheels}
    if wheels and built != {canonicalize_name(run.project)}:
        raise CibwError(f"{run.id}: cibuildwheel produced wheels of {sorted(built)}")
    return wheels
