"""A local Debian archive (unsigned, file://) with Packages, Sources and a Contents index, for tests of
the private apt's Contents lookups. Written from scratch; apt reads it with `trusted=yes`."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_archive(
    root: Path,
    packages: Mapping[str, tuple[str, Sequence[str]]],
    suite: str = "bookworm",
    arch: str = "arm64",
) -> str:
    """`packages`: binary name -> (source name, files it installs). Returns the mirror URL."""
    dist = root / "dists" / suite
    files: dict[str, bytes] = {}
    stanzas = []
    for name, (source, _paths) in sorted(packages.items()):
        stanzas.append(
            f"Package: {name}\nSource: {source}\nVersion: 1.0-1\nArchitecture: {arch}\n"
            f"Maintainer: t <t@example.invalid>\nFilename: pool/main/{name}_1.0-1_{arch}.deb\n"
            f"Size: 1\nSHA256: {'0' * 64}\nSection: libdevel\nDescription: {name}\n"
        )
    files[f"main/binary-{arch}/Packages"] = "\n".join(stanzas).encode()
    sources = {src for src, _ in packages.values()}
    files["main/source/Sources"] = "\n".join(
        f"Package: {s}\nVersion: 1.0-1\nDirectory: pool/main/{s}\nFiles:\n"
        f" {'0' * 32} 1 {s}_1.0-1.dsc\n"
        for s in sorted(sources)
    ).encode()
    owners: dict[str, list[str]] = {}
    for name, (_s, paths) in packages.items():
        for path in paths:
            owners.setdefault(path, []).append(f"libdevel/{name}")
    # One row per path, its packages comma-separated: Debian's format.
    contents = "".join(
        f"{path:<60} {','.join(sorted(who))}\n" for path, who in sorted(owners.items())
    ).encode()
    # Both forms, as Debian's Release lists them (apt skips a target whose plain form is unlisted).
    files[f"main/Contents-{arch}"] = contents
    files[f"main/Contents-{arch}.gz"] = gzip.compress(contents)
    for rel, data in files.items():
        (dist / rel).parent.mkdir(parents=True, exist_ok=True)
        (dist / rel).write_bytes(data)
    sums = "".join(
        f" {hashlib.sha256(d).hexdigest()} {len(d)} {rel}\n" for rel, d in sorted(files.items())
    )
    (dist / "Release").write_text(
        f"Suite: {suite}\nCodename: {suite}\nArchitectures: {arch}\nComponents: main\n"
        f"Date: Sat, 01 Jan 2022 00:00:00 UTC\nSHA256:\n{sums}"
    )
    return f"file://{root}"
