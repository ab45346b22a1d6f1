"""Hand-made distributions for the hardening tests: any filename, any METADATA bytes."""

from __future__ import annotations

import io
import tarfile
import zipfile


def wheel_bytes(dist_info: str, metadata: bytes, payload: bytes = b"x = 1\n") -> bytes:
    """A zip holding `<dist_info>/METADATA` (exactly `metadata`) and one module."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{dist_info}/METADATA", metadata)
        zf.writestr(f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        zf.writestr("mod.py", payload)
    return buf.getvalue()


def metadata(name: str, version: str, summary: str | None = None) -> bytes:
    text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if summary is not None:
        text += f"Summary: {summary}\n"
    return (text + "\nA test distribution.\n").encode("utf-8")


def sdist_bytes(top: str, pkg_info: bytes, fmt: str = "gz") -> bytes:
    """A source archive holding `<top>/PKG-INFO`: fmt is a tarfile compression (gz, bz2, xz) or zip."""
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(f"{top}/PKG-INFO", pkg_info)
        return buf.getvalue()
    with tarfile.open(fileobj=buf, mode=f"w:{fmt}") as tf:
        info = tarfile.TarInfo(f"{top}/PKG-INFO")
        info.size = len(pkg_info)
        tf.addfile(info, io.BytesIO(pkg_info))
    return buf.getvalue()
