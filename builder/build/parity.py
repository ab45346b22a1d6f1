"""The parity gate: compare a built wheel with upstream's wheel of the same release.

Run the parity comparison: find upstream's wheel, run the probe on both sides, compare.

Upstream's wheel is a wheel of the same project, version and CPython ABI for another platform,
preferably one this host runs natively (manylinux x86_64 here). The recipe's `[parity] probe` runs
twice, each time in a fresh folder holding only the wheel and the `[test] test-requires`:

- upstream's wheel with the host CPython of the same X.Y version (`builder.build.toolchain.host.find_host_python`),
- ours with Debian's arm64 CPython under qemu-user (`builder.build.runtest`, the same runner as the tests).

With `[parity] tests`, the recipe's `[test] test-command` (the project's own pytest suite, `{project}`
being a fresh copy of the unpacked sdist) runs the same two ways, upstream's side in a throwaway venv
of the host CPython; the pytest plugin `wheelfarm_outcomes` (loaded through PYTEST_ADDOPTS) records
every test's outcome, and `builder.check.parity.compare_tests` compares them test id by test id.

The findings use the checker's rule ids (WF020-WF030, `builder.check.findings.RULES`).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from builder.check import parity
from builder.check.findings import Finding
from builder.common.buildlog import BuildError, BuildLog
from builder.common.paths import cache_dir
from builder.common.upstream import DistFile
from builder.recipes.recipe import ParitySpec

PROBE_TIMEOUT = 600.0


@dataclass
class ParityReport:
    """The parity of one wheel against upstream's: what was compared, what matched, findings."""

    wheel: str
    upstream: str = ""  # upstream's wheel (file name) that was compared, "" when none
    python: str = ""
    probe_run: bool = False  # the probe ran on both sides
    probe_ours: list[str] = field(default_factory=list)
    probe_upstream: list[str] = field(default_factory=list)
    tests_command: str = ""  # the test-command whose outcomes are compared ("" when not asked)
    tests_run: bool = False  # the project's tests ran on both sides
    tests_ours: dict[str, int] = field(default_factory=dict)  # outcome -> how many tests
    tests_upstream: dict[str, int] = field(default_factory=dict)
    compared: dict[str, int] = field(default_factory=dict)
    matched: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def status(self) -> str:
        """ "matched" (all compared, nothing unaccepted), "differs", or "not compared"."""
        if not self.ok:
            return "differs"
        if not self.upstream:
            return "not compared"
        return "matched"

    def merge(self, comparison: parity.Comparison) -> None:
        for what, n in comparison.compared.items():
            self.compared[what] = self.compared.get(what, 0) + n
        for what, n in comparison.matched.items():
            self.matched[what] = self.matched.get(what, 0) + n
        self.findings += comparison.findings

    def summary(self) -> str:
        """One line for people: `matched upstream X: 1/1 extension modules, ...; 2 accepted`."""
        if not self.upstream:
            reasons = "; ".join(f.message for f in self.findings) or "no upstream wheel"
            return f"not compared: {reasons}"
        parts = [f"{self.matched.get(w, 0)}/{n} {w}" for w, n in self.compared.items()]
        accepted = sum(f.rule == parity.ACCEPTED for f in self.findings)
        errors = [f for f in self.findings if f.severity == "error"]
        text = f"{self.status} {self.upstream}: " + ", ".join(parts)
        if not self.probe_run:
            text += "; probe not run"
        if self.tests_command and not self.tests_run:
            text += "; tests not run"
        if accepted:
            text += f"; {accepted} accepted difference{'s' if accepted != 1 else ''}"
        if errors:
            text += f"; {len(errors)} error{'s' if len(errors) != 1 else ''}: {errors[0].message}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "wheel": self.wheel,
            "upstream": self.upstream,
            "python": self.python,
            "status": self.status,
            "ok": self.ok,
            "probe_run": self.probe_run,
            "probe": {"ours": self.probe_ours, "upstream": self.probe_upstream},
            "tests_run": self.tests_run,
            "tests": {
                "command": self.tests_command,
                "ours": self.tests_ours,
                "upstream": self.tests_upstream,
            },
            "compared": self.compared,
            "matched": self.matched,
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.summary(),
        }


# --- the host and upstream's wheel ----------------------------------------------------------------


def host_target() -> str:
    """This machine's manylinux platform tag (glibc version and architecture), for packaging.tags."""
    libc = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 2.17"
    major, minor = libc.split()[-1].split(".")[:2]
    return f"manylinux_{major}_{minor}_{platform.machine()}"


def wheel_python(tags: frozenset[Tag]) -> str | None:
    """ "3.11" for a cp311 wheel (None for a pure or non-CPython wheel)."""
    for tag in sorted(tags, key=str):
        if tag.interpreter.startswith("cp3") and tag.platform != "any":
            return f"3.{tag.interpreter[3:]}"
    return None


def pick_upstream(ours: Path, candidates: Sequence[str], python: str) -> str | None:
    """The upstream wheel (a file name from `candidates`) to compare `ours` with, or None.

    Same project and version, a platform other than ours, the same interpreter and ABI; a wheel the
    host installs natively first (its probe can run), then any other.
    """
    from builder.common.targets import supported_tags

    name, version, _, our_tags = parse_wheel_filename(ours.name)
    our_abis = {(t.interpreter, t.abi) for t in our_tags}
    our_platforms = {t.platform for t in our_tags}
    host = supported_tags(python, host_target())
    best: tuple[int, str] | None = None
    for filename in candidates:
        if not filename.endswith(".whl") or filename == ours.name:
            continue
        n, v, _, tags = parse_wheel_filename(filename)
        if n != name or v != version:
            continue
        if not {(t.interpreter, t.abi) for t in tags} & our_abis:
            continue
        if {t.platform for t in tags} & our_platforms or all(t.platform == "any" for t in tags):
            continue
        rank = 0 if tags & host else 1
        if best is None or (rank, filename) < best:
            best = (rank, filename)
    return best[1] if best else None


def _upstream_file(
    ours: Path, index_url: str | None, choose: Callable[[list[DistFile]], DistFile | None]
) -> Path | None:
    """Download (sha256-verified, cached) the file `choose` picks among the index's unyanked files
    of our wheel's release, or None (no such project, nothing chosen).

    Raises builder.common.upstream.UpstreamError when the index cannot be read."""
    from builder.common.upstream import IndexClient, ProjectNotFound

    name, version, _, _ = parse_wheel_filename(ours.name)
    with IndexClient(index_url) as client:
        try:
            releases = client.project(name).releases()
        except ProjectNotFound:
            return None
        chosen = choose([f for f in releases.get(version, []) if not f.yanked])
        return client.download(chosen) if chosen else None


def find_upstream(ours: Path, python: str, index_url: str | None) -> Path | None:
    """Upstream's comparable wheel (pick_upstream) of our wheel's release, downloaded, or None."""

    def choose(files: list[DistFile]) -> DistFile | None:
        wheels = {f.filename: f for f in files if f.is_wheel}
        chosen = pick_upstream(ours, list(wheels), python)
        return wheels[chosen] if chosen else None

    return _upstream_file(ours, index_url, choose)


# --- running the probe ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeRun:
    returncode: int
    stdout: str
    stderr: str

    def problem(self) -> str:
        last = [x for x in self.stderr.splitlines() if x.strip()]
        return f"exit {self.returncode}" + (f": {last[-1].strip()}" if last else "")


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    env: dict[str, str],
    cwd: Path,
    log: BuildLog,
    step: str,
    timeout: float = PROBE_TIMEOUT,
) -> ProbeRun:
    log.section(f"{step}: {' '.join(str(c) for c in cmd)}")
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        log.write(f"  timed out after {timeout:.0f} s")
        return ProbeRun(-1, "", f"timed out after {timeout:.0f} s")
    log.write("  stdout:\n" + proc.stdout)
    log.write("  stderr:\n" + proc.stderr)
    log.write(f"  -> exit {proc.returncode}")
    return ProbeRun(proc.returncode, proc.stdout, proc.stderr)


def probe_upstream(
    wheel: Path, python: str, probe: str, requires: Sequence[str], workdir: Path, log: BuildLog
) -> ProbeRun:
    """Run `probe` with upstream's wheel and the host CPython `python` (a fresh folder on the path)."""
    from builder.build.runtest import _clean_env, prepare_site
    from builder.build.toolchain.host import find_python
    from builder.common.targets import parse_target

    interpreter = find_python(python)
    site = prepare_site(
        wheel, python, requires, parse_target(host_target()).platforms, workdir, log
    )
    script = workdir / "wheelfarm_probe.py"
    script.write_text(probe)
    env = _clean_env()
    env.update({"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"})
    return _run([interpreter, "-s", script], env, workdir, log, "parity probe (upstream, host)")


def probe_ours(
    wheel: Path,
    python: str,
    probe: str,
    requires: Sequence[str],
    platforms: Sequence[str],
    sysroot: Path,
    workdir: Path,
    log: BuildLog,
) -> ProbeRun:
    """Run `probe` with our wheel and Debian's arm64 CPython under qemu-user."""
    from builder.build.runtest import prepare_site, target_env
    from builder.build.toolchain.host import ensure_qemu

    qemu = ensure_qemu()
    site = prepare_site(wheel, python, requires, platforms, workdir, log)
    env = target_env(qemu, sysroot, python, site, workdir)
    script = workdir / "wheelfarm_probe.py"
    script.write_text(probe)
    interpreter = sysroot / "usr" / "bin" / f"python{python}"
    return _run(
        [qemu, "-L", sysroot, interpreter, "-s", script],
        env,
        workdir,
        log,
        "parity probe (ours, qemu)",
    )


# --- running the project's tests ------------------------------------------------------------------

PLUGIN = (
    "wheelfarm_outcomes"  # builder/build/wheelfarm_outcomes.py, copied next to the tested wheel
)


@dataclass(frozen=True)
class TestsRun:
    """One run of the test-command: how it exited, and the outcome of every test pytest reported."""

    __test__ = False  # not a pytest class

    run: ProbeRun
    outcomes: parity.TestRun

    def problem(self) -> str | None:
        """Why this run cannot be compared (no test reported anything), or None."""
        if self.outcomes.outcomes or self.outcomes.collect:
            return None
        return f"no test outcome recorded ({self.run.problem()})"


def _run_tests(
    command: str, env: dict[str, str], sdist: Path, workdir: Path, log: BuildLog, step: str
) -> TestsRun:
    """`command` in an empty folder, {project} a fresh copy of `sdist`, the plugin recording."""
    from builder.build.runtest import TEST_TIMEOUT, expand_command
    from builder.common.sdist import unpack

    project = unpack(sdist, workdir / "project")
    plugin = workdir / "plugin"
    plugin.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name(f"{PLUGIN}.py"), plugin / f"{PLUGIN}.py")
    outcomes = workdir / "outcomes.jsonl"
    env = dict(env)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin), env.get("PYTHONPATH")])),
            "PYTEST_ADDOPTS": f"-p {PLUGIN} -p no:cacheprovider",
            "WHEELFARM_TEST_OUTCOMES": str(outcomes),
        }
    )
    cwd = (
        workdir / "run"
    )  # as cibuildwheel does: not the project folder, whose sources would shadow
    cwd.mkdir(parents=True, exist_ok=True)
    expanded = expand_command(command, project)
    run = _run(["/bin/sh", "-c", expanded], env, cwd, log, step, timeout=TEST_TIMEOUT)
    text = outcomes.read_text(errors="replace") if outcomes.exists() else ""
    result = TestsRun(run, parity.parse_test_outcomes(text, str(project)))
    log.write(f"  outcomes: {result.outcomes.counts()}")
    return result


def tests_upstream(
    wheel: Path,
    python: str,
    command: str,
    requires: Sequence[str],
    sdist: Path,
    workdir: Path,
    log: BuildLog,
) -> TestsRun:
    """The test-command with upstream's wheel and a throwaway venv of the host CPython `python`
    (no site-packages of the host: the tests see the wheel and `requires` only)."""
    from builder.build.runtest import _clean_env, prepare_site, write_python_bin
    from builder.build.toolchain.host import find_python
    from builder.common.targets import parse_target

    site = prepare_site(
        wheel, python, requires, parse_target(host_target()).platforms, workdir, log
    )
    venv = workdir / "venv"
    log.run(
        [find_python(python), "-m", "venv", "--without-pip", venv],
        step="tests venv",
        env=_clean_env(),
    )
    bindir = write_python_bin(workdir / "bin", python, f'exec "{venv / "bin" / "python"}" "$@"')
    env = _clean_env()
    env.update(
        {
            "PYTHONPATH": str(site),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "VIRTUAL_ENV": str(venv),
            "PATH": os.pathsep.join([str(bindir), str(venv / "bin"), env.get("PATH", "")]),
        }
    )
    return _run_tests(command, env, sdist, workdir, log, "parity tests (upstream, host)")


def tests_ours(
    wheel: Path,
    python: str,
    command: str,
    requires: Sequence[str],
    platforms: Sequence[str],
    sysroot: Path,
    sdist: Path,
    workdir: Path,
    log: BuildLog,
) -> TestsRun:
    """The test-command with our wheel and Debian's arm64 CPython under qemu-user (`python` and
    `pytest` on PATH run it)."""
    from builder.build.runtest import prepare_site, target_env
    from builder.build.toolchain.host import ensure_qemu

    site = prepare_site(wheel, python, requires, platforms, workdir, log)
    env = target_env(ensure_qemu(), sysroot, python, site, workdir)
    return _run_tests(command, env, sdist, workdir, log, "parity tests (ours, qemu)")


def find_sdist(ours: Path, index_url: str | None) -> Path | None:
    """Upstream's sdist of our wheel's release, downloaded, or None."""
    return _upstream_file(
        ours, index_url, lambda files: next((f for f in files if f.is_sdist), None)
    )


# --- the whole comparison -------------------------------------------------------------------------


def compare_with_upstream(
    ours: Path,
    *,
    log: BuildLog,
    spec: ParitySpec | None = None,
    requires: Sequence[str] = (),
    platforms: Sequence[str] | None = None,
    python: str | None = None,
    index_url: str | None = None,
    upstream: Path | None = None,
    sysroot: Path | None = None,
    test_command: str = "",
    sdist: Path | None = None,
) -> ParityReport:
    """Compare `ours` with upstream's wheel (`upstream`, else found on `index_url`); never raises for
    a difference or a missing upstream wheel: the report's findings say it.

    With `spec.tests`, `test_command` runs with both wheels, `{project}` being `sdist` unpacked
    (else upstream's sdist of the release, found on `index_url`)."""
    from builder.build.toolchain.host import ToolchainError, test_sysroot
    from builder.common.upstream import UpstreamError

    spec = spec or ParitySpec()
    _, _, _, tags = parse_wheel_filename(ours.name)
    python = python or wheel_python(tags) or ""
    report = ParityReport(wheel=ours.name, python=python)
    if spec.tests:
        report.tests_command = test_command
    log.section(f"parity: {ours.name} against upstream")
    if not python:
        report.findings.append(parity.not_compared(f"{ours.name} is not a CPython platform wheel"))
        return report
    if upstream is None:
        try:
            upstream = find_upstream(ours, python, index_url)
        except UpstreamError as exc:
            finding = parity.failed if spec.probe or spec.tests else parity.not_compared
            report.findings.append(finding(f"cannot read upstream's index: {exc}"))
            return report
        if upstream is None:
            report.findings.append(
                parity.not_compared(
                    f"upstream publishes no wheel of {canonicalize_name(ours.name.split('-')[0])} "
                    f"{ours.name.split('-')[1]} for cp{python.replace('.', '')} on another platform"
                )
            )
            return report
    report.upstream = upstream.name
    log.write(f"  upstream wheel: {upstream}")
    try:
        mine, theirs = parity.inventory(ours), parity.inventory(upstream)
    except ValueError as exc:
        report.findings.append(parity.failed(str(exc)))
        return report
    report.merge(parity.compare_inventories(mine, theirs, spec.accept))
    if not spec.probe and not spec.tests:
        return report
    what = " and ".join(w for w, asked in (("probe", spec.probe), ("tests", spec.tests)) if asked)
    _, _, _, up_tags = parse_wheel_filename(upstream.name)
    from builder.common.targets import supported_tags

    if not up_tags & supported_tags(python, host_target()):
        report.findings.append(
            parity.not_compared(f"{what} not run: this host cannot run {upstream.name}")
        )
        return report
    try:
        sysroot = sysroot or test_sysroot(python)
    except ToolchainError as exc:
        report.findings.append(parity.failed(f"{what} not run: {exc}"))
        return report
    if sysroot is None:
        report.findings.append(
            parity.not_compared(f"{what} not run: no arm64 interpreter for Python {python} here")
        )
        return report
    work = Path(tempfile.mkdtemp(dir=_work_root(), prefix="parity-"))
    sides = _Sides(
        ours,
        upstream,
        python,
        requires,
        platforms or ("manylinux2014_aarch64",),
        sysroot,
        work,
        log,
    )
    try:
        if spec.probe:
            _compare_probe(report, sides, spec)
        if spec.tests:
            _compare_tests(report, sides, spec, test_command, sdist, index_url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in report.findings:
        log.write(f"  {f.rule} {f.severity}: {f.message}")
    log.write(f"  parity: {report.summary()}")
    return report


@dataclass(frozen=True)
class _Sides:
    """What the probe and the tests share: the two wheels, and where and how each side runs."""

    ours: Path
    upstream: Path
    python: str
    requires: Sequence[str]
    platforms: Sequence[str]
    sysroot: Path
    work: Path
    log: BuildLog


def _compare_probe(report: ParityReport, s: _Sides, spec: ParitySpec) -> None:
    from builder.build.toolchain.host import ToolchainError

    try:
        up = probe_upstream(
            s.upstream, s.python, spec.probe, s.requires, s.work / "upstream", s.log
        )
        ou = probe_ours(
            s.ours, s.python, spec.probe, s.requires, s.platforms, s.sysroot, s.work / "ours", s.log
        )
    except (BuildError, ToolchainError) as exc:
        report.findings.append(parity.failed(f"probe not run: {exc}"))
        return
    if up.returncode != 0:
        report.findings.append(
            parity.failed(f"the probe failed with upstream's wheel: {up.problem()}")
        )
    if ou.returncode != 0:
        report.findings.append(parity.failed(f"the probe failed with our wheel: {ou.problem()}"))
    if up.returncode != 0 or ou.returncode != 0:
        return
    report.probe_run = True
    report.probe_upstream, report.probe_ours = (
        parity.probe_lines(up.stdout),
        parity.probe_lines(ou.stdout),
    )
    report.merge(parity.compare_probe(report.probe_ours, report.probe_upstream, spec.accept))


def _compare_tests(
    report: ParityReport,
    s: _Sides,
    spec: ParitySpec,
    command: str,
    sdist: Path | None,
    index_url: str | None,
) -> None:
    from builder.build.toolchain.host import ToolchainError
    from builder.common.sdist import SdistError
    from builder.common.upstream import UpstreamError

    if not command.strip():
        report.findings.append(
            parity.failed("tests not run: the recipe has no [test] test-command")
        )
        return
    if sdist is None:
        try:
            sdist = find_sdist(s.ours, index_url)
        except UpstreamError as exc:
            report.findings.append(parity.failed(f"tests not run: no sdist: {exc}"))
            return
        if sdist is None:
            report.findings.append(
                parity.not_compared(
                    f"tests not run: upstream's index has no sdist of {s.ours.name}"
                )
            )
            return
    s.log.write(f"  tests: {command} ({{project}} = {sdist.name} unpacked)")
    try:
        up = tests_upstream(
            s.upstream, s.python, command, s.requires, sdist, s.work / "tests-upstream", s.log
        )
        ou = tests_ours(
            s.ours,
            s.python,
            command,
            s.requires,
            s.platforms,
            s.sysroot,
            sdist,
            s.work / "tests-ours",
            s.log,
        )
    except (BuildError, ToolchainError, SdistError) as exc:
        report.findings.append(parity.failed(f"tests not run: {exc}"))
        return
    report.tests_upstream, report.tests_ours = up.outcomes.counts(), ou.outcomes.counts()
    if problem := up.problem():
        report.findings.append(parity.failed(f"the tests with upstream's wheel: {problem}"))
    if problem := ou.problem():
        report.findings.append(parity.failed(f"the tests with our wheel: {problem}"))
    if up.problem() or ou.problem():
        return
    report.tests_run = True
    report.merge(parity.compare_tests(ou.outcomes, up.outcomes, spec.accept))


def _work_root() -> Path:
    root = cache_dir() / "work"
    root.mkdir(parents=True, exist_ok=True)
    return root
