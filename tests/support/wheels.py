"""Assemble wheels by hand around given files, with valid (or deliberately wrong) WHEEL/METADATA/RECORD."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from packaging.tags import parse_tag
from packaging.utils import canonicalize_name

Row = tuple[str, str, str]


def record_row(name: str, data: bytes) -> Row:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return (name, f"sha256={digest}", str(len(data)))


def assemble_wheel(
    out: Path,
    tag: str,
    files: Mapping[str, bytes],
    *,
    name: str = "demo",
    version: str = "1.0",
    wheel_tags: str | None = None,
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    requires_python: str | None = None,
    requires_dist: Sequence[str] = (),
    edit_record: Callable[[list[Row]], list[Row]] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write out/<name>-<version>-<tag>.whl holding `files` plus its .dist-info.

    `tag` is the filename's compressed tag (e.g. "cp311-cp311-manylinux_2_17_aarch64"); `wheel_tags`
    makes the WHEEL file declare other tags, `metadata_*` make METADATA disagree, `requires_python`
    adds Requires-Python, `requires_dist` Requires-Dist lines, and `edit_record` rewrites the RECORD rows before they are written.
    """
    dist = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    tag_lines = "".join(f"Tag: {t}\n" for t in sorted(map(str, parse_tag(wheel_tags or tag))))
    root_is_purelib = "true" if tag.endswith("-any") else "false"
    contents = dict(files)
    contents[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: wheelfarm-tests\n"
        f"Root-Is-Purelib: {root_is_purelib}\n{tag_lines}"
    ).encode()
    contents[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {metadata_name or name}\n"
        f"Version: {metadata_version or version}\n"
        + (f"Requires-Python: {requires_python}\n" if requires_python else "")
        + "".join(f"Requires-Dist: {r}\n" for r in requires_dist)
        + "\nA test wheel.\n"
    ).encode()
    rows = [record_row(n, d) for n, d in contents.items()]
    if edit_record:
        rows = edit_record(rows)
    rows.append((f"{dist_info}/RECORD", "", ""))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    contents[f"{dist_info}/RECORD"] = buf.getvalue().encode()
    path = out / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", compression) as zf:
        for n, d in contents.items():
            info = zipfile.ZipInfo(n, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            info.external_attr = 0o755 << 16
            zf.writestr(info, d)
    return path
