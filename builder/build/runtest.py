"""Run a recipe's test against a built wheel under qemu-user, with the arm64 CPython of a sysroot.

The wheel is unpacked into a fresh site folder on PYTHONPATH, with what pip would install with it
(its Requires-Dist for the target, no extras) and the test requirements, as aarch64 or pure wheels
downloaded for the target. The sysroot holds only Debian's interpreter, so a wheel that
needs a grafted library must bring it: the test also reads /proc/self/maps and requires every library
in the wheel's `<pkg>.libs/` folder to be mapped from the wheel, not from anywhere else.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import zipfile
from collections.abc import Sequence
from pathlib import Path

from builder.build.toolchain.host import ensure_qemu
from builder.common.buildlog import BuildError, BuildLog
from builder.recipes.recipe import TestSpec

TEST_TIMEOUT = 900.0


def unpack_wheel(wheel: Path, site: Path) -> None:
    """Unpack a wheel as an installer would put its purelib/platlib content (data folders skipped)."""
    site.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if parts[0].endswith(".data"):  # purelib/platlib go to site; scripts, headers do not
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            if not parts[-1]:
                continue
            target = (site / "/".join(parts)).resolve()
            if not target.is_relative_to(site.resolve()):
                raise BuildError("test", f"{wheel.name}: unsafe path {info.filename}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))


def grafted_libraries(wheel: Path) -> list[str]:
    """Files in the wheel's `<pkg>.libs/` folders (auditwheel) or `.dylibs/` folders (delocate)."""
    with zipfile.ZipFile(wheel) as zf:
        return sorted(
            n
            for n in zf.namelist()
            if not n.endswith("/") and (n.split("/")[0].endswith(".libs") or "/.dylibs/" in f"/{n}")
        )


def download_test_requires(
    requires: Sequence[str], python: str, platforms: Sequence[str], dest: Path, log: BuildLog
) -> list[Path]:
    """aarch64 (or pure) wheels of `requires` for CPython `python`, downloaded with pip."""
    if not requires:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    major, minor = python.split(".")[:2]
    plat_args = [a for p in platforms for a in ("--platform", p)]
    log.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            *plat_args,
            "--python-version",
            f"{major}{minor}",
            "--implementation",
            "cp",
            "-d",
            dest,
            *requires,
        ],
        step="test requirements",
        env=_clean_env(),
    )
    return sorted(dest.glob("*.whl"))


def wheel_requires(wheel: Path, python: str, platform: str) -> list[str]:
    """The wheel's Requires-Dist that apply where it runs (CPython `python` on the platform tag
    `platform`, no extras), without their markers: pip, downloading for the target from the build
    machine, would evaluate a marker against the build machine."""
    from packaging.metadata import parse_email
    from packaging.requirements import InvalidRequirement, Requirement

    from builder.plan.pins import marker_env

    with zipfile.ZipFile(wheel) as zf:
        names = [
            n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        raw, _ = parse_email(zf.read(names[0])) if names else ({}, {})
    env = marker_env(python, platform)
    out = []
    for line in raw.get("requires_dist", []):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue  # the wheel's checker reports it; the test runs without it
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        out.append(f"{req.name}{extras}{req.specifier}")
    return out


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("_PYTHON_SYSCONFIGDATA_NAME", "_PYTHON_HOST_PLATFORM", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    return env


def prepare_site(
    wheel: Path,
    python: str,
    requires: Sequence[str],
    platforms: Sequence[str],
    workdir: Path,
    log: BuildLog,
) -> Path:
    """A fresh `workdir/site` holding the wheel, its own requirements and `requires` (wheels for
    `platforms`), unpacked."""
    site = workdir / "site"
    unpack_wheel(wheel, site)
    needed = [*wheel_requires(wheel, python, platforms[0]), *requires]
    for req in download_test_requires(needed, python, platforms, workdir / "test-requires", log):
        unpack_wheel(req, site)
    return site


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def write_python_bin(bindir: Path, python: str, exec_line: str) -> Path:
    """`bindir` with `python`, `python3`, `pythonX.Y` running `exec_line` (a shell `exec ...
    "$@"`) and `pytest` running `python -m pytest`: what a `test-command` finds on PATH. (The
    tests' pytest is a wheel unpacked on PYTHONPATH, with no script of its own; the host's `pytest`
    would test with the wrong interpreter.)"""
    bindir.mkdir(parents=True, exist_ok=True)
    _script(bindir / "python", exec_line)
    for alias in (f"python{python}", "python3"):
        (bindir / alias).unlink(missing_ok=True)
        (bindir / alias).symlink_to("python")
    _script(bindir / "pytest", f'exec "{bindir / "python"}" -m pytest "$@"')
    return bindir


def expand_command(command: str, project_dir: Path | None) -> str:
    """cibuildwheel's placeholders in a `test-command`: {project} and {package} are the unpacked sdist."""
    if project_dir is not None:
        command = command.replace("{project}", str(project_dir))
        command = command.replace("{package}", str(project_dir))
    return command


def target_env(qemu: Path, sysroot: Path, python: str, site: Path, workdir: Path) -> dict[str, str]:
    """The environment of a program run by the emulated interpreter: `site` on PYTHONPATH and a
    `python` (python3, pythonX.Y; `pytest` too) on PATH that is the emulated target interpreter."""
    interpreter = sysroot / "usr" / "bin" / f"python{python}"
    bindir = write_python_bin(
        workdir / "bin", python, f'exec "{qemu}" -L "{sysroot}" "{interpreter}" "$@"'
    )
    env = _clean_env()
    env.update(
        {
            "PYTHONPATH": str(site),
            "PYTHONDONTWRITEBYTECODE": "1",
            "QEMU_LD_PREFIX": str(sysroot),
            "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.pop("LD_LIBRARY_PATH", None)  # the target's loader must find nothing of ours by accident
    return env


def test_script(spec: TestSpec, grafted: Sequence[str]) -> str:
    """The Python program run under emulation: imports, the recipe's call, the grafting proof."""
    return textwrap.dedent(
        f"""
        import importlib, platform, sys
        assert platform.machine() == "aarch64", platform.machine()
        for name in {list(spec.imports)!r}:
            importlib.import_module(name)
        exec(compile({spec.call!r}, "<recipe test.call>", "exec"), {{"__name__": "__main__"}})
        grafted = {list(grafted)!r}
        if grafted:
            maps = open("/proc/self/maps").read()
            missing = [g for g in grafted if g not in maps]
            if missing:
                raise SystemExit("grafted libraries not loaded from the wheel: " + ", ".join(missing))
        print("wheelfarm-test-ok", platform.machine(), sys.version.split()[0])
        """
    )


test_script.__test__ = False  # type: ignore[attr-defined]


def describe_test(spec: TestSpec) -> str:
    """The recipe's test in one line, as provenance records it."""
    parts = [f"import {', '.join(spec.imports)}"]
    if spec.call:
        parts.append(spec.call)
    if spec.test_command:
        parts.append(f"test-command: {spec.test_command}")
    return "; ".join(parts)


def run_wheel_test(
    wheel: Path,
    python: str,
    spec: TestSpec,
    sysroot: Path,
    workdir: Path,
    log: BuildLog,
    *,
    platforms: Sequence[str] = ("manylinux2014_aarch64",),
    project_dir: Path | None = None,
) -> str:
    """Run `spec` for `wheel` under qemu-aarch64 in `sysroot`; return the output, raise BuildError."""
    qemu = ensure_qemu()
    interpreter = sysroot / "usr" / "bin" / f"python{python}"
    site = prepare_site(wheel, python, spec.test_requires, platforms, workdir, log)
    grafted = grafted_libraries(wheel)
    env = target_env(qemu, sysroot, python, site, workdir)
    script = workdir / "wheelfarm_test.py"
    script.write_text(test_script(spec, grafted))
    log.write(f"  grafted libraries: {json.dumps(grafted)}")
    out = log.run(
        [qemu, "-L", sysroot, interpreter, "-s", script],
        step="test",
        env=env,
        cwd=workdir,
        timeout=TEST_TIMEOUT,
    )
    if "wheelfarm-test-ok aarch64" not in out:
        raise BuildError("test", "the test program did not report success", log.path)
    if spec.test_command.strip():
        out += log.run(
            [expand_command(spec.test_command, project_dir)],
            step="test-command",
            env=env,
            cwd=workdir,
            shell=True,
            timeout=TEST_TIMEOUT,
        )
    return out


run_wheel_test.__test__ = False  # type: ignore[attr-defined]
