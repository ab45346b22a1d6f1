"""Verify a Mach-O's embedded code signature the way the macOS kernel does when it maps pages.

An arm64 Mac kills a process that maps a page whose hash differs from the signature's (every arm64
binary must be signed, ad hoc at least), so a wheel whose extension was changed after linking without
re-signing cannot be imported. LC_CODE_SIGNATURE points at a SuperBlob (big-endian) in __LINKEDIT
holding one or more CodeDirectories (sha256, sometimes an alternate sha1 one), the requirements and
entitlements blobs and, for a Developer ID signature, a CMS blob. Each CodeDirectory lists the hash
of every page of the file below its codeLimit and, at negative indices, the hashes of those blobs
("special slots"). This module re-computes all of them; it does not judge the CMS signature (the
certificate chain), which only identity-signed binaries carry and an ad-hoc one never has.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from .macho import VM_PROT_EXECUTE, MachO

CSMAGIC_EMBEDDED_SIGNATURE = 0xFADE0CC0
CSMAGIC_CODEDIRECTORY = 0xFADE0C02
CSSLOT_CODEDIRECTORY = 0
CSSLOT_ALTERNATE_CODEDIRECTORIES = range(0x1000, 0x1005)
CSSLOT_SIGNATUREBLOB = 0x10000
CS_ADHOC = 0x2
# Special slots whose blob lives inside the SuperBlob (2 requirements, 5 entitlements, 7 DER
# entitlements); 1 (Info.plist) and 3 (CodeResources) hash files of a bundle, not of a dylib.
EMBEDDED_SLOTS = {
    2: "requirements",
    4: "application",
    5: "entitlements",
    6: "rep-specific",
    7: "DER entitlements",
}
HASHES = {
    1: ("sha1", 20),
    2: ("sha256", 32),
    3: ("sha256", 20),  # CS_HASHTYPE_SHA256_TRUNCATED
    4: ("sha384", 48),
}


@dataclass(frozen=True)
class Signature:
    """What was verified: for the evidence in the report."""

    adhoc: bool
    identifier: str
    hashes: tuple[str, ...]  # one per CodeDirectory: "sha256", "sha1"
    pages: int  # page hashes verified (summed over CodeDirectories)
    page_size: int
    special_slots: int  # special slot hashes verified
    cms: bool  # a CMS (identity) signature blob is present (not judged here)

    def describe(self) -> str:
        kind = "ad-hoc" if self.adhoc else "identity-signed (CMS not judged)"
        return (
            f"{kind} {'+'.join(self.hashes)} signature of {self.identifier!r}: {self.pages} page "
            f"hashes of {self.page_size} bytes and {self.special_slots} special slots verified"
        )


class SignatureError(ValueError):
    """The signature is missing, malformed, or does not match the file."""


def verify(data: bytes, macho: MachO) -> Signature:
    """Verify the signature of the thin slice `data`; SignatureError says what is wrong."""
    if macho.signature is None:
        raise SignatureError("has no LC_CODE_SIGNATURE: macOS kills an unsigned arm64 binary")
    dataoff, datasize = macho.signature
    linkedit = macho.segment("__LINKEDIT")
    if linkedit is None:
        raise SignatureError("has LC_CODE_SIGNATURE but no __LINKEDIT segment")
    if dataoff < linkedit.fileoff or dataoff + datasize > linkedit.fileoff + linkedit.filesize:
        raise SignatureError(
            f"code signature [{dataoff}, {dataoff + datasize}) lies outside __LINKEDIT "
            f"[{linkedit.fileoff}, {linkedit.fileoff + linkedit.filesize})"
        )
    if dataoff + datasize > len(data):
        raise SignatureError(f"code signature runs past the end of the file ({len(data)} bytes)")
    blob = data[dataoff : dataoff + datasize]
    magic, length, count = struct.unpack_from(">III", blob, 0)
    if magic != CSMAGIC_EMBEDDED_SIGNATURE:
        raise SignatureError(f"code signature magic is {magic:#x}, not a SuperBlob")
    if length > datasize or 12 + 8 * count > length:
        raise SignatureError(
            f"SuperBlob length {length} / {count} entries exceed its {datasize} bytes"
        )
    entries: dict[int, bytes] = {}
    for i in range(count):
        slot, offset = struct.unpack_from(">II", blob, 12 + 8 * i)
        if offset + 8 > length:
            raise SignatureError(f"SuperBlob entry {slot:#x} at {offset} is outside the blob")
        (size,) = struct.unpack_from(">I", blob, offset + 4)
        if size < 8 or offset + size > length:
            raise SignatureError(f"SuperBlob entry {slot:#x} has a bad length {size}")
        entries[slot] = blob[offset : offset + size]
    directories = [
        entries[s]
        for s in (CSSLOT_CODEDIRECTORY, *CSSLOT_ALTERNATE_CODEDIRECTORIES)
        if s in entries
    ]
    if not directories:
        raise SignatureError("the SuperBlob holds no CodeDirectory")
    results = [_verify_directory(cd, data, dataoff, entries, macho) for cd in directories]
    return Signature(
        adhoc=all(r[0] for r in results),
        identifier=results[0][1],
        hashes=tuple(r[2] for r in results),
        pages=sum(r[3] for r in results),
        page_size=results[0][4],
        special_slots=sum(r[5] for r in results),
        cms=CSSLOT_SIGNATUREBLOB in entries and len(entries[CSSLOT_SIGNATUREBLOB]) > 8,
    )


def _verify_directory(
    cd: bytes, data: bytes, sig_offset: int, entries: dict[int, bytes], macho: MachO
) -> tuple[bool, str, str, int, int, int]:
    if len(cd) < 44:
        raise SignatureError("CodeDirectory is truncated")
    (
        magic,
        length,
        version,
        flags,
        hash_offset,
        ident_offset,
        n_special,
        n_code,
        code_limit,
        hash_size,
        hash_type,
        _platform,
        page_log2,
    ) = struct.unpack_from(">IIIIIIIIIBBBB", cd, 0)
    if magic != CSMAGIC_CODEDIRECTORY:
        raise SignatureError(f"CodeDirectory magic is {magic:#x}")
    if hash_type not in HASHES:
        raise SignatureError(f"CodeDirectory uses unknown hash type {hash_type}")
    algorithm, size = HASHES[hash_type]
    if hash_size != size:
        raise SignatureError(f"CodeDirectory hashSize {hash_size} does not fit {algorithm}")
    if version >= 0x20300 and len(cd) >= 0x40:
        (code_limit64,) = struct.unpack_from(">Q", cd, 0x38)
        code_limit = code_limit64 or code_limit
    identifier = cd[ident_offset : cd.index(b"\0", ident_offset)].decode("utf-8", "replace")
    if code_limit != sig_offset:
        raise SignatureError(
            f"{algorithm} CodeDirectory covers {code_limit} bytes, but the signature starts at "
            f"{sig_offset}: bytes in between are unsigned"
        )
    page = 1 << page_log2 if page_log2 else code_limit
    if n_code != (code_limit + page - 1) // page:
        raise SignatureError(
            f"{algorithm} CodeDirectory has {n_code} page hashes for {code_limit} bytes of "
            f"{page}-byte pages"
        )
    if hash_offset + n_code * size > length or hash_offset < n_special * size:
        raise SignatureError(f"{algorithm} CodeDirectory hash slots run outside it")
    for i in range(n_code):
        want = cd[hash_offset + i * size : hash_offset + (i + 1) * size]
        got = hashlib.new(algorithm, data[i * page : min((i + 1) * page, code_limit)]).digest()
        if got[:size] != want:
            raise SignatureError(
                f"page {i} (bytes {i * page}-{min((i + 1) * page, code_limit) - 1}) does not match "
                f"its {algorithm} hash: the file was changed after it was signed"
            )
    special = 0
    for slot, what in EMBEDDED_SLOTS.items():
        stored = (
            cd[hash_offset - slot * size : hash_offset - (slot - 1) * size]
            if slot <= n_special
            else b""
        )
        held = entries.get(slot)
        if held is None:
            if stored.strip(b"\0"):
                raise SignatureError(
                    f"special slot {slot} ({what}) is hashed but its blob is missing"
                )
            continue
        if not stored.strip(b"\0"):
            raise SignatureError(f"the {what} blob is not bound by a special slot hash")
        if hashlib.new(algorithm, held).digest()[:size] != stored:
            raise SignatureError(
                f"the {what} blob does not match its special slot {algorithm} hash"
            )
        special += 1
    if version >= 0x20400 and len(cd) >= 0x58:
        base, limit, _exec_flags = struct.unpack_from(">QQQ", cd, 0x40)
        text = next(
            (s for s in macho.segments if s.fileoff == base and s.initprot & VM_PROT_EXECUTE),
            None,
        )
        if text is None:
            raise SignatureError(f"execSegBase {base} is not the start of an executable segment")
        if limit == 0 or limit > text.filesize or base + limit > code_limit:
            raise SignatureError(
                f"execSegLimit {limit} does not fit segment {text.name} ({text.filesize} bytes)"
            )
    return bool(flags & CS_ADHOC), identifier, algorithm, n_code, page, special
