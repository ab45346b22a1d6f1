"""Bounds on what reading a zip may cost, checked before the zip is opened or a member inflated.

`zipfile.ZipFile` builds a ZipInfo for every central directory entry (a 20 MB wheel with a million
empty entries took a worker to 550 MB), and a member may declare gigabytes that inflate from a few
megabytes (a decompression bomb). The index's upload parsing and the checker refuse both first.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterable
from typing import BinaryIO

MAX_ENTRIES = 100_000  # the largest wheels on PyPI hold a few tens of thousands of files
MAX_CENTRAL_DIRECTORY = 64 << 20  # bytes
MAX_MEMBER_SIZE = 4 << 30  # bytes after inflating, per member
MAX_TOTAL_SIZE = 16 << 30  # bytes after inflating, all members together
MAX_RATIO = 200  # inflated / compressed: deflate tops out near 1032; real binaries are at 2-10
RATIO_FLOOR = 16 << 20  # members smaller than this may compress as well as they like

_EOCD = struct.Struct("<4sHHHHLLH")
_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQHHLLQQQQ")


class ZipLimitError(ValueError):
    """The zip would cost more to read than the limits allow; the message says which limit."""


def central_directory(fh: BinaryIO) -> tuple[int, int]:
    """(entries, bytes) of the zip's central directory, read from its end records only.

    ZipLimitError when either is over a limit; zipfile.BadZipFile when the end records are
    missing or broken."""
    fh.seek(0, 2)
    end = fh.tell()
    tail_len = min(end, _EOCD.size + 0xFFFF)
    fh.seek(end - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        raise zipfile.BadZipFile("not a zip archive (no end of central directory record)")
    _sig, _disk, _cd_disk, _here, entries, size, offset, _comment = _EOCD.unpack_from(tail, pos)
    if 0xFFFF in (entries,) or 0xFFFFFFFF in (size, offset):
        if pos < _LOCATOR.size:
            raise zipfile.BadZipFile("a zip64 archive without its zip64 end record locator")
        sig, _d, eocd64_at, _disks = _LOCATOR.unpack_from(tail, pos - _LOCATOR.size)
        if sig != b"PK\x06\x07" or eocd64_at + _EOCD64.size > end:
            raise zipfile.BadZipFile("a broken zip64 end record locator")
        fh.seek(eocd64_at)
        record = fh.read(_EOCD64.size)
        if len(record) != _EOCD64.size or record[:4] != b"PK\x06\x06":
            raise zipfile.BadZipFile("a broken zip64 end of central directory record")
        entries, size = _EOCD64.unpack(record)[7:9]
    if entries > MAX_ENTRIES:
        raise ZipLimitError(f"the zip has {entries} entries; the limit is {MAX_ENTRIES}")
    if size > MAX_CENTRAL_DIRECTORY:
        raise ZipLimitError(
            f"the zip's central directory is {size} bytes; the limit is {MAX_CENTRAL_DIRECTORY}"
        )
    return entries, size


def open_bounded(fh: BinaryIO) -> zipfile.ZipFile:
    """zipfile.ZipFile(fh) once central_directory() has found it within the limits."""
    central_directory(fh)
    fh.seek(0)
    return zipfile.ZipFile(fh)


def bombs(infos: Iterable[zipfile.ZipInfo]) -> list[tuple[str, str]]:
    """(member name, why) for every member whose declared size or ratio is over a limit, and
    ("", why) when the members together declare too much."""
    found, total = [], 0
    for info in infos:
        total += info.file_size
        if info.file_size > MAX_MEMBER_SIZE:
            found.append(
                (info.filename, f"declares {info.file_size} bytes; the limit is {MAX_MEMBER_SIZE}")
            )
        elif info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(
            info.compress_size, 1
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            found.append(
                (
                    info.filename,
                    f"inflates {ratio}:1 to {info.file_size} bytes; the limit is {MAX_RATIO}:1",
                )
            )
    if total > MAX_TOTAL_SIZE:
        found.append(("", f"the members declare {total} bytes; the limit is {MAX_TOTAL_SIZE}"))
    return found
