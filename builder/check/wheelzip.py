"""One streaming pass over a wheel's members: hash each one, check its CRC, keep the first bytes of binaries.

RECORD checking needs every byte of every member hashed, so this pass is the checker's cost. It reads
each member's compressed bytes straight from the file in large chunks and inflates them with zlib (no
per-read zipfile machinery), and splits the members over a few threads: hashlib and zlib release the
GIL on large buffers, so the threads really run in parallel. Nothing is held in memory beyond one
chunk per thread and the first HEAD_SIZE bytes of members that start with a binary magic. ELF members
can be written out as they stream by (`spill`), for the manylinux judgement, which reads them from disk
at their wheel paths; that saves inflating them a second time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .binaries import MAGIC_SIZE, may_be_binary

CHUNK = 1 << 20
PARTS_PER_WORKER = 4
ELF_MAGIC = b"\x7fELF"
HEAD_SIZE = 1 << 16  # enough for ELF/PE headers and nearly every Mach-O's load commands
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length


class WheelReadError(Exception):
    """The wheel cannot be read as a zip file (the checker's exit 2, not a finding)."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int  # bytes after decompression
    algorithm: str
    digest: str  # urlsafe base64 without padding, as RECORD writes it
    crc_ok: bool
    head: bytes  # first HEAD_SIZE bytes when the member starts with a binary magic, else b""


def record_digest(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def scan(
    path: Path,
    infos: Iterable[zipfile.ZipInfo],
    algorithms: dict[str, str],
    workers: int | None = None,
    spill: Path | None = None,
) -> dict[str, Member]:
    """Hash every file member of the wheel at `path` (with RECORD's algorithm for it, else sha256).

    With `spill`, members that start with the ELF magic (and have a name that stays inside a folder)
    are also written to `spill / name`.
    """
    members = sorted((i for i in infos if not i.is_dir()), key=lambda i: i.header_offset)
    workers = max(1, min(workers or os.cpu_count() or 1, 4, len(members)))
    if workers == 1:
        results = [_scan_part(path, members, algorithms, spill)]
    else:
        # Runs cost unlike amounts per byte (text inflates slower than incompressible blobs), so
        # a few runs per thread, taken as threads come free, keep the threads evenly busy.
        parts = _partition(members, workers * PARTS_PER_WORKER)
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda p: _scan_part(path, p, algorithms, spill), parts))
    return {m.name: m for part in results for m in part}


def _partition(members: list[zipfile.ZipInfo], n: int) -> list[list[zipfile.ZipInfo]]:
    """Split members (in file order) into n runs of about equal compressed size (each read in order)."""
    total = sum(m.compress_size for m in members) or 1
    parts: list[list[zipfile.ZipInfo]] = [[]]
    done = 0
    for m in members:
        if done >= total * len(parts) / n and len(parts) < n:
            parts.append([])
        parts[-1].append(m)
        done += m.compress_size
    return [p for p in parts if p]


def _scan_part(
    path: Path, infos: list[zipfile.ZipInfo], algorithms: dict[str, str], spill: Path | None
) -> list[Member]:
    out = []
    with open(path, "rb") as f:
        fallback: zipfile.ZipFile | None = None
        for info in infos:
            algorithm = algorithms.get(info.filename, "sha256")
            if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                chunks = _raw_chunks(f, info)
            else:  # bzip2, lzma: rare in wheels; let zipfile inflate them
                fallback = fallback or zipfile.ZipFile(path)
                chunks = _zipfile_chunks(fallback, info)
            out.append(_digest(info, algorithm, chunks, spill))
        if fallback is not None:
            fallback.close()
    return out


def _raw_chunks(f, info: zipfile.ZipInfo) -> Iterable[bytes]:
    if info.flag_bits & 0x1:
        raise WheelReadError(f"{info.filename}: encrypted zip members are not allowed in wheels")
    f.seek(info.header_offset)
    local = f.read(_LOCAL_HEADER.size)
    if len(local) != _LOCAL_HEADER.size:
        raise WheelReadError(f"{info.filename}: truncated local file header")
    signature, name_len, extra_len = _LOCAL_HEADER.unpack(local)
    if signature != b"PK\x03\x04":
        raise WheelReadError(f"{info.filename}: bad local file header")
    f.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
    left = info.compress_size
    inflate = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise WheelReadError(f"{info.filename}: truncated member data")
        left -= len(chunk)
        if inflate is None:
            yield chunk
            continue
        data = inflate.decompress(chunk, 4 * CHUNK)
        yield data
        # Bounded steps, so that _digest stops a member that inflates beyond its declared size.
        while inflate.unconsumed_tail:
            data = inflate.decompress(inflate.unconsumed_tail, 4 * CHUNK)
            yield data
    if inflate is not None:
        yield inflate.flush()


def _zipfile_chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterable[bytes]:
    try:
        with zf.open(info) as member:
            while chunk := member.read(CHUNK):
                yield chunk
    except zipfile.BadZipFile as exc:  # zipfile checks the CRC itself
        raise WheelReadError(f"{info.filename}: {exc}") from exc


def safe_name(name: str) -> bool:
    """A member name that extracts inside its folder (no absolute path, no `..`)."""
    return not name.startswith("/") and ".." not in name.split("/")


def _digest(
    info: zipfile.ZipInfo, algorithm: str, chunks: Iterable[bytes], spill: Path | None
) -> Member:
    try:
        hasher = hashlib.new(algorithm)
    except ValueError:
        hasher = hashlib.sha256()  # an unknown algorithm in RECORD is a finding, not a crash
        algorithm = "sha256"
    size = crc = 0
    head = b""
    copy = None  # where an ELF member is spilled to
    undecided = spill is not None and safe_name(info.filename)
    try:
        for chunk in chunks:
            if size < HEAD_SIZE:
                head += chunk[: HEAD_SIZE - size]
            hasher.update(chunk)
            crc = zlib.crc32(chunk, crc)
            if copy is not None:
                copy.write(chunk)
            elif undecided and size + len(chunk) >= len(ELF_MAGIC):
                undecided = False
                if head.startswith(ELF_MAGIC):
                    assert spill is not None
                    target = spill / info.filename
                    target.parent.mkdir(parents=True, exist_ok=True)
                    copy = open(target, "wb")  # noqa: SIM115 (closed below, also on errors)
                    copy.write(head[:size] + chunk)  # what came before is all in head
            size += len(chunk)
            if size > info.file_size:
                raise WheelReadError(f"{info.filename}: inflates beyond its declared size")
    except zlib.error as exc:
        raise WheelReadError(f"{info.filename}: {exc}") from exc
    finally:
        if copy is not None:
            copy.close()
    if not may_be_binary(head[:MAGIC_SIZE]):
        head = b""
    return Member(
        info.filename, size, algorithm, record_digest(hasher.digest()), crc == info.CRC, head
    )
