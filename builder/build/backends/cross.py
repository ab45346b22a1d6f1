"""The cross backend: a host CPython + zig + an aarch64 `_sysconfigdata` build the wheel on x86_64.

The sdist's build requirements (and the recipe's `build-requires`) are installed once per Python and
requirement set into a cached venv of the host interpreter (cache_dir()/"buildenv"), then the wheel is
built with `pip wheel --no-deps --no-build-isolation`: isolation would drop the sysconfigdata from
PYTHONPATH and could fetch aarch64 wheels of build dependencies into the x86_64 build env.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from builder.build.backends import Backend
from builder.build.toolchain.host import (
    COMMAND_LOG_VAR,
    CrossToolchain,
    cross_env,
    cross_target,
    find_host_python,
    pkg_config_misses,
    python_host_dirs,
)
from builder.build.toolchain.leaks import Leak, scan_commands
from builder.build.toolchain.meson import write_cross_file
from builder.build.toolchain.namespace import hermetic_command, userns_available
from builder.common.atomic import file_lock
from builder.common.buildlog import BuildError, BuildLog
from builder.common.paths import cache_dir
from builder.common.sdist import SdistError, build_requirements, unpack
from builder.recipes.recipe import BuildOptions

# pip wheel --no-build-isolation needs `wheel` beside setuptools older than 70.1 (bdist_wheel).
TOOL_REQUIRES = ("wheel",)


def build_requires(src: Path, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The build env's requirements: the sdist's static build requirements, the tools the build
    needs and the recipe's `extra`, as normalized strings."""
    try:
        requires = [*build_requirements(src), *TOOL_REQUIRES, *extra]
        return tuple(sorted({str(Requirement(r)) for r in requires}))
    except SdistError as exc:
        raise BuildError("build requirements", str(exc)) from None
    except InvalidRequirement as exc:
        raise BuildError("build requirements", f"not a PEP 508 requirement: {exc}") from None


def build_env(python: str, requirements: Sequence[str], log: BuildLog) -> Path:
    """A cached venv of the host CPython `python` with `requirements` installed; return its python.

    Keyed by the interpreter and the requirement set: cache_dir()/"buildenv"/<python>-<hash>.
    """
    host = find_host_python(python)
    key_text = "\n".join([str(host.executable), host.full_version, *sorted(requirements)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    root = cache_dir() / "buildenv" / f"{python}-{key}"
    exe = root / "bin" / "python"
    # venvs are not relocatable (script shebangs): build in place under a lock, mark when done.
    with file_lock(root.parent / f".{root.name}.lock"):
        if (root / ".complete").exists():
            log.section(f"build env (cached): {root}")
            return exe
        shutil.rmtree(root, ignore_errors=True)
        env = _host_env()
        log.run([host.executable, "-m", "venv", root], step="build env", env=env)
        log.run(
            [
                exe,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "--upgrade",
                *requirements,
            ],
            step="build requirements",
            env=env,
        )
        (root / ".complete").write_text("\n".join(requirements) + "\n")
    return exe


def _host_env() -> dict[str, str]:
    """Our environment without anything that would make a host interpreter act as a cross one."""
    env = dict(os.environ)
    for key in ("_PYTHON_SYSCONFIGDATA_NAME", "_PYTHON_HOST_PLATFORM", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    return env


_FLAG_VARS = ("CFLAGS", "CXXFLAGS")


def merge_env(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """`base` updated with `extra`, keeping what makes a cross build correct.

    PYTHONPATH and PATH from `extra` are prepended to base's, CPPFLAGS/LDFLAGS appended to base's
    (the macOS toolchain's header copy must stay first); CFLAGS/CXXFLAGS always keep an
    optimisation level and -fno-sanitize=undefined (zig builds Debug with UBSan otherwise); CPATH is
    refused (it overrides zig's glibc headers): use CPPFLAGS.
    """
    env = dict(base)
    for key, value in extra.items():
        if key in ("PATH", "PYTHONPATH") and env.get(key):
            env[key] = f"{value}{os.pathsep}{env[key]}"
        elif key in ("CPPFLAGS", "LDFLAGS") and env.get(key) and value:
            env[key] = f"{env[key]} {value}"
        else:
            env[key] = value
    for key in _FLAG_VARS:
        flags = env.get(key, "").split()
        if not any(f.startswith("-O") for f in flags):
            flags.insert(0, "-O2")
        if "-fno-sanitize=undefined" not in flags:
            flags.append("-fno-sanitize=undefined")
        env[key] = " ".join(flags)
    if "CPATH" in env:
        raise BuildError("environment", "CPATH is set: pass include folders in CPPFLAGS (-I...)")
    return env


def venv_environment(venv_python: Path) -> dict[str, str]:
    """The host environment with the build venv active (its scripts first on PATH)."""
    env = _host_env()
    env["VIRTUAL_ENV"] = str(venv_python.parent.parent)
    env["PATH"] = f"{venv_python.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def cross_build_environment(
    venv_python: Path, python: str, target: str, extra: Mapping[str, str] = {}
) -> dict[str, str]:
    """Everything `pip wheel` needs to build for `target` with the build venv of `python`."""
    host = find_host_python(python)
    env = merge_env(venv_environment(venv_python), cross_env(host.executable, target))
    env["PATH"] = f"{venv_python.parent}{os.pathsep}{env['PATH']}"
    return merge_env(env, dict(extra))


def pip_wheel_command(
    venv_python: Path,
    src: Path,
    dist: Path,
    config_settings: Mapping[str, str | tuple[str, ...]] = {},
) -> list[str | Path]:
    """`pip wheel` without isolation or dependencies: the build env is already complete."""
    settings: list[str] = []
    for key, value in config_settings.items():
        for item in [value] if isinstance(value, str) else value:
            settings.append(f"--config-settings={key}={item}")
    return [
        venv_python,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "-v",
        *settings,
        "-w",
        dist,
        src,
    ]


class CrossBackend(Backend):
    """zig cross compilation with the host CPython; see the module docstring."""

    name = "cross"

    def available(self, python: str, target: str) -> str | None:
        from builder.build.toolchain.host import ToolchainError, cross_target

        try:
            if target.startswith("macosx_"):
                from builder.build.toolchain.macos import mac_target

                mac_target(target)  # arm64 or x86_64, one architecture per wheel
                find_host_python(python)
                return None
            if cross_target(target).libc == "musl":
                # auditwheel on a glibc host judges zig's musl extensions as glibc ones and
                # tags them manylinux: the result would not meet the target.
                return f"{target}: musllinux is not supported by the cross backend yet"
            find_host_python(python)
        except ToolchainError as exc:
            return str(exc)
        except ValueError as exc:
            return f"{target}: {exc}"
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
        log.section(f"cross build of {sdist.name} for cp{python} {target}")
        try:
            src = unpack(sdist, workdir / "src")
        except SdistError as exc:
            raise BuildError("unpack", str(exc)) from None
        requirements = build_requires(src, options.build_requires)
        log.write(f"  build requires: {', '.join(requirements)}")
        venv_python = build_env(python, requirements, log)
        env = cross_build_environment(venv_python, python, target, options.environment)
        if options.before_build.strip():
            log.run(
                [_placeholders(options.before_build, src)],
                step="before-build",
                env=env,
                cwd=src,
                shell=True,
            )
        dist = workdir / "dist"
        dist.mkdir(parents=True, exist_ok=True)
        commands = workdir / "cc-commands.log"
        env[COMMAND_LOG_VAR] = str(commands)
        settings = dict(options.config_settings)
        if build_backend(src) == "mesonpy":
            cross = meson_cross_file(env, target, workdir)
            log.write(f"  meson-python: cross file {cross}")
            settings["setup-args"] = (
                *_as_tuple(settings.get("setup-args")),
                f"--cross-file={cross}",
            )
        command = pip_wheel_command(venv_python, src, dist, settings)
        if not target.startswith("macosx_") and userns_available():
            includes, _ = python_host_dirs(find_host_python(python).executable)
            view = CrossToolchain(target).include_view()
            command = hermetic_command(command, view, keep=[Path(d) for d in includes])
            log.write(f"  /usr/include is the target's headers ({view}) during the build")
        elif not target.startswith("macosx_"):
            log.write("  /usr/include is the host's: this machine cannot make user namespaces")
        try:
            log.run(command, step="build", env=env, cwd=workdir)
        except BuildError as exc:
            # A leak is the likelier cause of a failed build than what the compiler said last.
            check_leaks(commands, python, log, failed=exc)
            if misses := pkg_config_misses(commands):
                log.section("pkg-config modules the build asked for and did not get")
                for name in misses:  # pkg-config's own words: what the resolver reads
                    log.write(f"  Package {name} was not found in the pkg-config search path")
            raise
        check_leaks(commands, python, log)
        wheels = sorted(dist.glob("*.whl"))
        if len(wheels) != 1:
            raise BuildError(
                "build", f"expected one wheel in {dist}, found {len(wheels)}", log.path
            )
        return wheels[0]


def check_leaks(
    commands: Path, python: str, log: BuildLog, failed: BuildError | None = None
) -> None:
    """Fail the build (BuildError "host leak", naming the command) when a compile or link command
    named a host folder or a host-only flag; the host CPython's headers are allowed."""
    includes, libdirs = python_host_dirs(find_host_python(python).executable)
    leaks = scan_commands(commands, allowed=includes, host_libdirs=libdirs)
    count = sum(1 for _ in commands.open()) if commands.exists() else 0
    log.section(f"host leak scan: {count} compile/link/generator commands, {len(leaks)} leaks")
    for leak in leaks:
        log.write(f"  {leak}")
    if leaks:
        raise leak_error(leaks, log.path, failed)


def leak_error(leaks: Sequence[Leak], log: Path, failed: BuildError | None = None) -> BuildError:
    more = f" (and {len(leaks) - 1} more in the log)" if len(leaks) > 1 else ""
    after = f"; the build then failed: {failed.summary}" if failed else ""
    return BuildError("host leak", f"{leaks[0]}{more}{after}", log)


def build_backend(src: Path) -> str:
    """The sdist's PEP 517 build backend ("" when pyproject.toml names none)."""
    try:
        data = tomllib.loads((src / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    return str(data.get("build-system", {}).get("build-backend", ""))


def meson_cross_file(env: Mapping[str, str], target: str, folder: Path) -> Path:
    """The meson cross file for a meson-python build: the build env's wrappers and flags, and the
    pkg-config folders of the build (the native prefixes' only, never the host's)."""
    pc = [Path(d) for d in env.get("PKG_CONFIG_LIBDIR", "").split(os.pathsep) if d]
    return write_cross_file(env, cross_target(target).arch, folder, pc, folder / "no-pkgconfig")


def _as_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _placeholders(command: str, src: Path) -> str:
    return command.replace("{project}", str(src)).replace("{package}", str(src))
