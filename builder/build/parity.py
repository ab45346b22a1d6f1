"""The parity gate: compare a built wheel with upstream's wheel of the same release.

Run the parity comparison: find upstream's wheel, run the probe on both sides, compare.

Upstream's wheel is a wheel of the same project, version and CPython ABI for another platform,
preferably one this host runs natively (manylinux x86_64 here). The recipe's `[parity] probe` runs
twice, each time in a fresh folder holding only the wheel and the `[test] test-requires`:

- upstream's wheel with the host CPython of the same X.Y version (`builder.build.toolchain.host.find_host_python`),
- ours with Debian's arm64 CPython under qemu-user (`builder.build.runtest`, the same runner as the tests).

The findings use the checker's rule ids (WF020-WF028, `builder.check.findings.RULES`).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from builder.check import parity
from builder.check.findings import Finding
from builder.common.buildlog import BuildError, BuildLog
from builder.common.paths import cache_dir
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


def find_upstream(ours: Path, python: str, index_url: str | None) -> Path | None:
    """Download (sha256-verified, cached) upstream's comparable wheel from the index, or None.

    Raises builder.common.upstream.UpstreamError when the index cannot be read."""
    from builder.common.upstream import IndexClient, ProjectNotFound

    name, version, _, _ = parse_wheel_filename(ours.name)
    with IndexClient(index_url) as client:
        try:
            releases = client.project(name).releases()
        except ProjectNotFound:
            return None
        files = {f.filename: f for f in releases.get(version, []) if f.is_wheel and not f.yanked}
        chosen = pick_upstream(ours, list(files), python)
        return client.download(files[chosen]) if chosen else None


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
    cmd: Sequence[str | os.PathLike[str]], env: dict[str, str], cwd: Path, log: BuildLog, step: str
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
            timeout=PROBE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        log.write(f"  timed out after {PROBE_TIMEOUT:.0f} s")
        return ProbeRun(-1, "", f"timed out after {PROBE_TIMEOUT:.0f} s")
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
) -> ParityReport:
    """Compare `ours` with upstream's wheel (`upstream`, else found on `index_url`); never raises for
    a difference or a missing upstream wheel: the report's findings say it."""
    from builder.build.toolchain.host import ToolchainError, test_sysroot
    from builder.common.upstream import UpstreamError

    spec = spec or ParitySpec()
    _, _, _, tags = parse_wheel_filename(ours.name)
    python = python or wheel_python(tags) or ""
    report = ParityReport(wheel=ours.name, python=python)
    log.section(f"parity: {ours.name} against upstream")
    if not python:
        report.findings.append(parity.not_compared(f"{ours.name} is not a CPython platform wheel"))
        return report
    if upstream is None:
        try:
            upstream = find_upstream(ours, python, index_url)
        except UpstreamError as exc:
            finding = parity.failed if spec.probe else parity.not_compared
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
    if not spec.probe:
        return report
    _, _, _, up_tags = parse_wheel_filename(upstream.name)
    from builder.common.targets import supported_tags

    if not up_tags & supported_tags(python, host_target()):
        report.findings.append(
            parity.not_compared(f"probe not run: this host cannot run {upstream.name}")
        )
        return report
    try:
        sysroot = sysroot or test_sysroot(python)
    except ToolchainError as exc:
        report.findings.append(parity.failed(f"probe not run: {exc}"))
        return report
    if sysroot is None:
        report.findings.append(
            parity.not_compared(f"probe not run: no arm64 interpreter for Python {python} here")
        )
        return report
    platforms = platforms or ("manylinux2014_aarch64",)
    work = Path(tempfile.mkdtemp(dir=_work_root(), prefix="parity-"))
    try:
        try:
            up = probe_upstream(upstream, python, spec.probe, requires, work / "upstream", log)
            ou = probe_ours(
                ours, python, spec.probe, requires, platforms, sysroot, work / "ours", log
            )
        except (BuildError, ToolchainError) as exc:
            report.findings.append(parity.failed(f"probe not run: {exc}"))
            return report
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if up.returncode != 0:
        report.findings.append(
            parity.failed(f"the probe failed with upstream's wheel: {up.problem()}")
        )
    if ou.returncode != 0:
        report.findings.append(parity.failed(f"the probe failed with our wheel: {ou.problem()}"))
    if up.returncode != 0 or ou.returncode != 0:
        return report
    report.probe_run = True
    report.probe_upstream, report.probe_ours = (
        parity.probe_lines(up.stdout),
        parity.probe_lines(ou.stdout),
    )
    report.merge(parity.compare_probe(report.probe_ours, report.probe_upstream, spec.accept))
    for f in report.findings:
        log.write(f"  {f.rule} {f.severity}: {f.message}")
    log.write(f"  parity: {report.summary()}")
    return report


def _work_root() -> Path:
    root = cache_dir() / "work"
    root.mkdir(parents=True, exist_ok=True)
    return root
