"""`codesign` for delocate on Linux: ad-hoc re-signing with llvm-objcopy, checked by our verifier.

    python -m builder.build.toolchain.macos_codesign --force --sign - FILE...   # re-sign ad hoc, then verify
    python -m builder.build.toolchain.macos_codesign --verify FILE...           # verify (delocate's validate step)

Signing needs a Mach-O that already has LC_CODE_SIGNATURE (zig and Apple's linker always write one):
llvm-objcopy rewrites the file and regenerates the ad-hoc signature for it. Only the ad-hoc identity
`-` exists here. Messages follow Apple's tool where delocate reads them ("code object is not signed
at all"); exit status 1 on any failure, naming the file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from builder.check import codesign, macho
from builder.check.binaries import BinaryFormatError


def verify_file(path: Path) -> list[str]:
    """Problems with the signatures of every slice of `path` (empty: all verified)."""
    problems = []
    try:
        parts = macho.slices(path.read_bytes())
    except (OSError, BinaryFormatError, ValueError) as exc:
        return [f"{path}: not a readable Mach-O: {exc}"]
    for data, image in parts:
        try:
            codesign.verify(data, image)
        except codesign.SignatureError as exc:
            problems.append(f"{path} ({image.arch}): {exc}")
    return problems


def sign_file(path: Path, objcopy: str) -> list[str]:
    parts = macho.slices(path.read_bytes())
    unsigned = [image.arch for _, image in parts if image.signature is None]
    if unsigned:
        return [
            f"{path}: cannot sign ad hoc here: the {', '.join(unsigned)} slice has no "
            "LC_CODE_SIGNATURE for llvm-objcopy to regenerate"
        ]
    if len(parts) > 1:
        return [f"{path}: cannot re-sign a universal (fat) file here; sign each slice first"]
    done = subprocess.run([objcopy, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        return [f"{path}: llvm-objcopy failed: {done.stderr.strip()}"]
    return verify_file(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codesign")
    parser.add_argument("-f", "--force", action="store_true")
    parser.add_argument("-s", "--sign", metavar="IDENTITY")
    parser.add_argument("-v", "--verify", action="store_true")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    problems: list[str] = []
    if args.sign is not None:
        if args.sign != "-":
            print(
                f"codesign: only the ad-hoc identity '-' exists here, not {args.sign!r}",
                file=sys.stderr,
            )
            return 1
        objcopy = os.environ.get("WHEELFARM_LLVM_OBJCOPY", "llvm-objcopy")
        for path in args.files:
            problems += sign_file(path, objcopy)
    elif args.verify:
        for path in args.files:
            parts = macho.slices(path.read_bytes())
            if all(image.signature is None for _, image in parts):
                print(f"{path}: code object is not signed at all", file=sys.stderr)
                return 1
            problems += verify_file(path)
    else:
        parser.error("--sign or --verify")
    for problem in problems:
        print(f"codesign: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
