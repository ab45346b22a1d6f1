"""check_wheel: prove that a wheel is what its tags say. The gate before publishing and on upload."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import BuildTag, InvalidWheelFilename, NormalizedName, parse_wheel_filename
from packaging.version import Version

from . import rules, wheelinfo, ziplimits
from .binaries import Binary, Read, identify
from .findings import Finding
from .report import Report
from .wheelzip import Member, WheelReadError, safe_name, scan

ZIP_BOMB = "WF012-zip-bomb"


def check_wheel(path: str | os.PathLike[str], *, workers: int | None = None) -> Report:
    """Check the wheel file at `path`. Raises WheelReadError when it cannot be read as a wheel.

    `workers` caps the threads that hash members (default: the CPU count, at most 4).
    """
    path = Path(path)
    try:
        project, version, build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise WheelReadError(f"{path}: {exc}") from exc
    try:
        with open(path, "rb") as fh:
            try:
                ziplimits.central_directory(fh)
            except ziplimits.ZipLimitError as exc:
                return _refused(path, tags, [("", str(exc))])
        with zipfile.ZipFile(path) as zf:
            bombs = ziplimits.bombs(zf.infolist())
            if bombs:  # judged on the declared sizes: nothing is inflated, hashed or spilled
                return _refused(path, tags, bombs)
            return _check(path, zf, project, version, build, tags, workers)
    except WheelReadError as exc:
        raise WheelReadError(f"{path}: {exc}") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:  # unreadable, not a zip, cut short
        raise WheelReadError(f"{path}: {exc}") from exc


def _refused(path: Path, tags: frozenset[Tag], why: list[tuple[str, str]]) -> Report:
    return Report(
        wheel=str(path),
        tags=tuple(sorted(map(str, tags))),
        findings=tuple(
            Finding(ZIP_BOMB, "error", name, f"{name or 'the wheel'}: {message}")
            for name, message in why
        ),
    )


def _check(
    path: Path,
    zf: zipfile.ZipFile,
    project: NormalizedName,
    version: Version,
    build: BuildTag,
    tags: frozenset[Tag],
    workers: int | None,
) -> Report:
    infos = zf.infolist()
    names = [i.filename for i in infos if not i.is_dir()]
    dist_info = wheelinfo.find_dist_info(names, project, version)
    findings: list[Finding] = []
    if dist_info is None:
        findings.append(
            Finding(wheelinfo.RECORD, "error", "", "no single .dist-info folder in the wheel")
        )
        entries = None
    else:
        findings += wheelinfo.check_wheel_tags(zf, dist_info, tags, build)
        findings += wheelinfo.check_metadata(zf, dist_info, project, version)
        entries, record_findings = wheelinfo.read_record(zf, dist_info)
        findings += record_findings
    algorithms = {n: e.algorithm for n, e in (entries or {}).items() if e.algorithm}
    expected, unknown = rules.expectations(tags)
    findings += unknown
    with tempfile.TemporaryDirectory(prefix="wheelfarm-check-") as tmp:
        # ELF members land in `tmp` as the scan streams them, for the manylinux/musllinux judgement.
        spill = Path(tmp) if any(e.libc for e in expected) else None
        members = scan(path, infos, algorithms, workers, spill)
        if dist_info is not None:
            findings += wheelinfo.check_record(dist_info, entries, members)
        for name in names:
            if not safe_name(name):
                findings.append(
                    Finding(
                        wheelinfo.RECORD, "error", name, f"{name} would install outside its folder"
                    )
                )
        for name in sorted(n for n, count in Counter(names).items() if count > 1):
            # installers disagree on which copy wins; RECORD cannot vouch for both
            findings.append(Finding(wheelinfo.RECORD, "error", name, f"the zip holds {name} twice"))

        binaries = [
            b
            for m in members.values()
            if m.head and (b := identify(m.name, _reader(zf, m))) is not None
        ]
        findings += rules.check_binaries(tags, binaries, expected)
        evidence: list[str] = []
        if any(e.os == "macos" for e in expected):
            from . import macos_load

            machos = {
                b.path: zf.read(b.path)
                for b in binaries
                if b.format == "Mach-O" and b.judged and safe_name(b.path)
            }
            found, evidence = macos_load.check(machos, names, tags)
            findings += found
        findings += rules.check_suffixes(names, tags, expected)
        if spill is not None:
            from . import linux_policy  # auditwheel and pyelftools: only Linux wheels need them

            elf_paths = [
                b.path
                for b in binaries
                if b.format == "ELF"
                and b.judged
                and safe_name(b.path)
                and b.slices[0].arch in {a for e in expected for a in e.archs}
            ]
            findings += linux_policy.judge(spill, elf_paths, expected)

    return Report(
        wheel=str(path),
        tags=tuple(sorted(map(str, tags))),
        binaries=tuple(sorted(binaries, key=lambda b: b.path)),
        findings=tuple(dict.fromkeys(findings)),
        evidence=tuple(evidence),
    )


def check_files(paths: Iterable[str | os.PathLike[str]]) -> list[Report]:
    """Check wheel files and folders of wheels (their *.whl, sorted); unreadable ones get `error` set.

    This is the whole checker behind `wheelfarm check`; `--index` downloads a project's wheels and
    hands the files to this function.
    """
    reports = []
    for given in paths:
        p = Path(given)
        files = sorted(p.glob("*.whl")) if p.is_dir() else [p]
        if p.is_dir() and not files:
            reports.append(Report(wheel=str(p), error=f"{p}: no .whl files in this folder"))
        for file in files:
            try:
                reports.append(check_wheel(file))
            except WheelReadError as exc:
                reports.append(Report(wheel=str(file), error=str(exc)))
    return reports


def _reader(zf: zipfile.ZipFile, member: Member) -> Read:
    """Header bytes of a member: from the head the scan kept, else by reading the member again."""

    def read(offset: int, size: int) -> bytes:
        end = offset + size
        if end <= len(member.head) or len(member.head) == member.size:
            return member.head[offset:end]
        with zf.open(
            member.name
        ) as f:  # rare: a fat Mach-O's later slices, a huge load command area
            f.seek(offset)
            return f.read(size)

    return read


__all__ = ["Binary", "Finding", "Report", "WheelReadError", "check_files", "check_wheel"]
