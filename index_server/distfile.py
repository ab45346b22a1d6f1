"""Reading a distribution file: its name and version from the filename and from its own metadata.

Used by uploads (to refuse files whose contents do not match their names) and by the catalog (to
rebuild a record for a file whose upload was cut short after the file itself was stored).
"""

from __future__ import annotations

import functools
import hashlib
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from packaging.metadata import parse_email
from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from builder.check import ziplimits

# Source distributions: PEP 625's .tar.gz and the legacy archive forms pip still installs (with
# tarfile's open mode; None is a zip). pip's lzip/lzma-alone forms (.tlz, .tar.lz, .tar.lzma) are
# left out: Python cannot read them.
SDIST_FORMATS: dict[str, str | None] = {
    ".tar.gz": "r:gz",
    ".tgz": "r:gz",
    ".tar.bz2": "r:bz2",
    ".tbz": "r:bz2",
    ".tar.xz": "r:xz",
    ".txz": "r:xz",
    ".tar": "r:",
    ".zip": None,
}

# A METADATA file larger than this is not plausible; refusing it bounds memory use.
MAX_METADATA = 8 << 20


class InvalidDistribution(ValueError):
    """The file is not a distribution we accept; the message says why, for the uploader."""


@dataclass(frozen=True)
class DistName:
    """A valid distribution filename. `filename` is its canonical form, under which it is stored:
    the normalized name escaped as PEP 427/491 say (`foo_bar`), the normalized version, the tags as
    given in lower case. `key` is what makes two files the same distribution, as on PyPI: the kind,
    canonicalize_version (1.0 == 1.0.0), the build tag and the set of tags."""

    filename: str
    project: NormalizedName
    version: Version
    kind: Literal["wheel", "sdist"]
    key: tuple[Any, ...] = ()
    given: str = ""  # the filename as uploaded


@dataclass(frozen=True)
class DistInfo:
    name: DistName
    metadata: bytes  # the METADATA / PKG-INFO file as stored in the archive
    requires_python: str | None
    summary: str | None


def project_name(name: str) -> NormalizedName | None:
    """The normalized form of a valid project name (PEP 508), or None: URLs with anything else are
    answered 404 before the name reaches a page, a storage key or a Location header."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        return None


def parse_filename(filename: str) -> DistName:
    """Validate a distribution filename (PEP 427 wheel or PEP 625 sdist) without touching the file.

    Sdists may also carry a legacy, non-normalized name (`Foo_Bar-1.0.tar.gz`, as pip accepts), but
    the name must be a valid project name: nothing else may reach a page, a URL or a storage key.
    """
    if not filename or "/" in filename or "\\" in filename or "\0" in filename:
        raise InvalidDistribution(f"invalid filename {filename!r}: no path separators allowed")
    if filename.startswith(".") or ".." in filename:
        raise InvalidDistribution(f"invalid filename {filename!r}")
    if not filename.isascii() or not filename.isprintable():
        # Normalized wheel and sdist names are ASCII (PEP 427, PEP 625); so is every header value.
        raise InvalidDistribution(
            f"invalid filename {filename!r}: distribution filenames are printable ASCII"
        )
    try:
        if filename.endswith(".whl"):
            project, version, build, tags = parse_wheel_filename(filename)
            parts = filename.removesuffix(".whl").split("-")
            canonical = "-".join(
                [_escaped(project), str(version), *parts[2:-3], *(p.lower() for p in parts[-3:])]
            )
            key = ("wheel", canonicalize_version(version), build, tags)
            return DistName(canonical + ".whl", project, version, "wheel", key, filename)
        if (ext := sdist_extension(filename)) is not None:
            # packaging parses the PEP 625 form; a legacy extension is parsed as if it were .tar.gz.
            stem = filename.removesuffix(ext)
            project, version = parse_sdist_filename(stem + ".tar.gz")
            name_part = stem.rpartition("-")[0]
            if project_name(name_part) is None:
                raise InvalidSdistFilename(f"{name_part!r} is not a valid project name")
            canonical = f"{_escaped(project)}-{version}{ext}"
            key = ("sdist", canonicalize_version(version))
            return DistName(canonical, project, version, "sdist", key, filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise InvalidDistribution(f"invalid distribution filename {filename!r}: {exc}") from None
    raise InvalidDistribution(
        f"{filename!r} is not a wheel (.whl) or a source distribution ({', '.join(SDIST_FORMATS)})"
    )


def sdist_extension(filename: str) -> str | None:
    return next((ext for ext in SDIST_FORMATS if filename.endswith(ext)), None)


def _escaped(project: NormalizedName) -> str:
    return project.replace("-", "_")


@functools.lru_cache(maxsize=1 << 16)
def dist_key(filename: str) -> tuple[Any, ...] | None:
    """The `key` of a stored filename (None for one that is not valid); cached, for the uniqueness
    check of every upload against every file of its project."""
    try:
        return parse_filename(filename).key
    except InvalidDistribution:
        return None


def inspect(fh: BinaryIO, filename: str) -> DistInfo:
    """Open the archive `fh` and check that its metadata names the project and version of `filename`."""
    name = parse_filename(filename)
    fh.seek(0)
    raw = _wheel_metadata(fh, name) if name.kind == "wheel" else _sdist_metadata(fh, name)
    fh.seek(0)
    fields, unparsed = parse_email(raw)  # decodes UTF-8 (and RFC 2047) properly: str values only
    meta_name, meta_version = fields.get("name"), fields.get("version")
    if not meta_name or not meta_version:
        bad = ", ".join(k for k in ("name", "version") if k in unparsed)
        raise InvalidDistribution(
            f"{filename}: metadata has no valid Name or no Version" + (f" ({bad})" if bad else "")
        )
    if project_name(meta_name) != name.project:
        raise InvalidDistribution(
            f"{filename}: metadata names project {meta_name!r}, the filename {name.project!r}"
        )
    try:
        version = Version(meta_version)
    except InvalidVersion:
        raise InvalidDistribution(f"{filename}: invalid Version {meta_version!r}") from None
    if version != name.version:
        raise InvalidDistribution(
            f"{filename}: metadata has version {meta_version}, the filename {name.version}"
        )
    return DistInfo(name, raw, fields.get("requires_python"), fields.get("summary"))


def _wheel_metadata(fh: BinaryIO, name: DistName) -> bytes:
    try:
        zf = ziplimits.open_bounded(fh)  # bounds the central directory before zipfile parses it
    except ziplimits.ZipLimitError as exc:
        raise InvalidDistribution(f"{name.given or name.filename}: {exc}") from None
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InvalidDistribution(f"{name.filename}: not a zip archive") from None
    with zf:
        candidates = [
            n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        if len(candidates) != 1:
            raise InvalidDistribution(
                f"{name.filename}: expected one *.dist-info/METADATA, found {len(candidates)}"
            )
        info = zf.getinfo(candidates[0])
        if info.file_size > MAX_METADATA:
            raise InvalidDistribution(f"{name.filename}: METADATA is too large")
        try:
            return zf.read(info)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InvalidDistribution(f"{name.filename}: cannot read METADATA: {exc}") from None


def _sdist_metadata(fh: BinaryIO, name: DistName) -> bytes:
    mode = SDIST_FORMATS[sdist_extension(name.filename) or ".tar.gz"]
    if mode is None:
        return _zip_sdist_metadata(fh, name)
    try:
        tf = tarfile.open(fileobj=fh, mode=mode)  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, EOFError):
        raise InvalidDistribution(
            f"{name.given}: not a {mode[2:] or 'plain'} tar archive"
        ) from None
    with tf:
        try:
            for count, member in enumerate(tf):
                if count >= ziplimits.MAX_ENTRIES:  # tarfile keeps every member it has read
                    raise InvalidDistribution(
                        f"{name.given}: no top-level PKG-INFO among its first "
                        f"{ziplimits.MAX_ENTRIES} members"
                    )
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    if member.size > MAX_METADATA:
                        raise InvalidDistribution(f"{name.given}: PKG-INFO is too large")
                    extracted = tf.extractfile(member)
                    assert extracted is not None
                    return extracted.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidDistribution(f"{name.given}: broken tar archive: {exc}") from None
    raise InvalidDistribution(f"{name.given}: no top-level PKG-INFO")


def _zip_sdist_metadata(fh: BinaryIO, name: DistName) -> bytes:
    try:
        zf = ziplimits.open_bounded(fh)
    except ziplimits.ZipLimitError as exc:
        raise InvalidDistribution(f"{name.given}: {exc}") from None
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InvalidDistribution(f"{name.given}: not a zip archive") from None
    with zf:
        found = [
            i
            for i in zf.infolist()
            if i.filename.count("/") == 1 and i.filename.endswith("/PKG-INFO")
        ]
        if len(found) != 1:
            raise InvalidDistribution(
                f"{name.given}: expected one top-level PKG-INFO, found {len(found)}"
            )
        if found[0].file_size > MAX_METADATA:
            raise InvalidDistribution(f"{name.given}: PKG-INFO is too large")
        try:
            return zf.read(found[0])
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InvalidDistribution(f"{name.given}: cannot read PKG-INFO: {exc}") from None


def hash_file(fh: BinaryIO) -> tuple[str, int]:
    """sha256 hex digest and size of `fh`, read from the start; leaves it at the start."""
    fh.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := fh.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    fh.seek(0)
    return digest.hexdigest(), size
