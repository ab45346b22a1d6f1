"""The wheel's own declarations: WHEEL tags, METADATA name and version, RECORD hashes and sizes."""

from __future__ import annotations

import csv
import email.parser
import io
import zipfile
from dataclasses import dataclass

from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .findings import Finding, error
from .wheelzip import Member

TAGS = "WF008-wheel-tags"
METADATA = "WF009-metadata"
RECORD = "WF010-record"
# PEP 427: RECORD hashes use sha256 or stronger; these are too weak to prove anything.
_WEAK_HASHES = {"md5", "sha1", "sha224"}
_HEADER_LIMIT = 1 << 20  # METADATA headers are small; the long description after them is not read


@dataclass(frozen=True)
class RecordEntry:
    algorithm: str | None
    digest: str | None
    size: int | None


def find_dist_info(names: list[str], project: str, version: Version) -> str | None:
    """The wheel's `.dist-info` folder: the one whose name and version match the filename, else the only one."""
    folders = sorted(
        {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    )
    for folder in folders:
        stem = folder.removesuffix(".dist-info")
        dist, _, ver = stem.rpartition("-")
        try:
            if canonicalize_name(dist) == project and Version(ver) == version:
                return folder
        except InvalidVersion:
            continue
    return folders[0] if len(folders) == 1 else None


def _headers(zf: zipfile.ZipFile, name: str) -> email.message.Message:
    """Parse the header block of an RFC 822 style file, reading no further than its first blank line."""
    lines = []
    size = 0
    with zf.open(name) as f:
        for line in io.TextIOWrapper(f, encoding="utf-8", errors="replace"):
            if not line.strip() or size > _HEADER_LIMIT:
                break
            lines.append(line)
            size += len(line)
    return email.parser.HeaderParser().parsestr("".join(lines))


def check_wheel_tags(
    zf: zipfile.ZipFile, dist_info: str, tags: frozenset[Tag], build: tuple
) -> list[Finding]:
    path = f"{dist_info}/WHEEL"
    try:
        wheel = _headers(zf, path)
    except KeyError:
        return [error(TAGS, path, f"{path} is missing")]
    declared: set[Tag] = set()
    for line in wheel.get_all("Tag") or []:
        declared |= parse_tag(line.strip())
    findings = []
    if declared != tags:
        extra = sorted(map(str, declared - tags))
        missing = sorted(map(str, tags - declared))
        detail = "; ".join(
            part
            for part in (
                f"not in the filename: {', '.join(extra)}" if extra else "",
                f"missing from WHEEL: {', '.join(missing)}" if missing else "",
            )
            if part
        )
        findings.append(error(TAGS, path, f"{path} Tag lines differ from the filename ({detail})"))
    declared_build = (wheel.get("Build") or "").strip()
    filename_build = f"{build[0]}{build[1]}" if build else ""
    if declared_build != filename_build:
        findings.append(
            error(
                TAGS,
                path,
                f"{path} says Build {declared_build or '(none)'} but the filename says "
                f"{filename_build or '(none)'}",
            )
        )
    return findings


def check_metadata(
    zf: zipfile.ZipFile, dist_info: str, project: str, version: Version
) -> list[Finding]:
    path = f"{dist_info}/METADATA"
    try:
        meta = _headers(zf, path)
    except KeyError:
        return [error(METADATA, path, f"{path} is missing")]
    findings = []
    name = (meta.get("Name") or "").strip()
    if canonicalize_name(name) != project:
        findings.append(
            error(METADATA, path, f"{path} Name {name!r} differs from the filename's {project!r}")
        )
    raw = (meta.get("Version") or "").strip()
    try:
        same = Version(raw) == version
    except InvalidVersion:
        same = False
    if not same:
        findings.append(
            error(METADATA, path, f"{path} Version {raw!r} differs from the filename's {version}")
        )
    return findings


def read_record(
    zf: zipfile.ZipFile, dist_info: str
) -> tuple[dict[str, RecordEntry] | None, list[Finding]]:
    """RECORD's entries by path, or None when there is no RECORD; findings for malformed rows."""
    path = f"{dist_info}/RECORD"
    try:
        with zf.open(path) as f:
            text = f.read().decode("utf-8")
    except KeyError:
        return None, [error(RECORD, path, f"{path} is missing")]
    except UnicodeDecodeError:
        return None, [error(RECORD, path, f"{path} is not UTF-8")]
    entries: dict[str, RecordEntry] = {}
    findings = []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) != 3:
            findings.append(error(RECORD, path, f"{path} row {row!r} does not have 3 fields"))
            continue
        name, hash_, size = row
        if name in entries:
            findings.append(error(RECORD, name, f"{path} lists {name} twice"))
        algorithm, _, digest = hash_.partition("=")
        entries[name] = RecordEntry(
            algorithm or None, digest or None, int(size) if size.isdigit() else None
        )
    return entries, findings


def check_record(
    dist_info: str, entries: dict[str, RecordEntry] | None, members: dict[str, Member]
) -> list[Finding]:
    """Every file is listed with a sha256 (or stronger) hash and size that match its bytes, and back."""
    findings: list[Finding] = []
    for name, member in members.items():
        if not member.crc_ok:
            findings.append(error(RECORD, name, f"{name} fails its zip CRC check (corrupt member)"))
    if entries is None:
        return findings
    record = f"{dist_info}/RECORD"
    unhashed = {
        record,
        f"{record}.jws",
        f"{record}.p7s",
    }  # RECORD cannot hash itself or its signatures
    for name, member in members.items():
        if name in unhashed:
            continue
        entry = entries.get(name)
        if entry is None:
            findings.append(error(RECORD, name, f"{name} is not listed in RECORD"))
            continue
        if entry.algorithm is None or entry.digest is None:
            findings.append(error(RECORD, name, f"RECORD lists {name} without a hash"))
        elif entry.algorithm in _WEAK_HASHES or entry.algorithm != member.algorithm:
            findings.append(
                error(RECORD, name, f"RECORD hashes {name} with {entry.algorithm}, not sha256")
            )
        elif entry.digest != member.digest:
            findings.append(
                error(
                    RECORD,
                    name,
                    f"{name} has {member.algorithm}={member.digest}, RECORD says {entry.digest}",
                )
            )
        if entry.size is None:
            findings.append(error(RECORD, name, f"RECORD lists {name} without a size"))
        elif entry.size != member.size:
            findings.append(
                error(RECORD, name, f"{name} is {member.size} bytes, RECORD says {entry.size}")
            )
    for name in sorted(set(entries) - set(members)):
        if not name.endswith("/"):
            findings.append(error(RECORD, name, f"RECORD lists {name}, which is not in the wheel"))
    return findings
