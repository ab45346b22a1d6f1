"""What the checker reports: rules with stable ids, and findings against them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    id: str
    summary: str


# Stable ids: tools and the index server's 422 responses refer to them; never renumber.
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("WF000-unknown-platform", "a platform tag the checker does not know (not judged)"),
        Rule(
            "WF001-arch-mismatch", "a binary's format or architecture differs from a platform tag"
        ),
        Rule("WF002-missing-arch", "a Mach-O lacks a slice its macOS multi-arch tag needs"),
        Rule("WF003-native-in-pure-wheel", "an `any` wheel carries native code"),
        Rule("WF004-macos-min-version", "a Mach-O needs a newer macOS than the tag says"),
        Rule("WF005-linux-symbol-versions", "glibc/musl symbol versions newer than the tag allows"),
        Rule("WF006-linux-policy", "external libraries or other auditwheel policy failures"),
        Rule(
            "WF007-ext-suffix", "an extension module suffix differs from the Python or platform tag"
        ),
        Rule("WF008-wheel-tags", "WHEEL Tag lines differ from the filename's tags"),
        Rule("WF009-metadata", "METADATA name or version differs from the filename"),
        Rule(
            "WF010-record",
            "RECORD misses a file, lists a missing one, or has a wrong hash/size; bad zip entries",
        ),
        Rule("WF011-bad-binary", "a file starts like a binary but its headers are unreadable"),
        Rule(
            "WF012-zip-bomb",
            "the zip costs too much to read (entries, central directory, declared sizes or "
            "compression ratio over the checker's limits); nothing of it was inflated",
        ),
        Rule(
            "WF013-macos-code-signature",
            "a Mach-O's code signature is missing (arm64) or a page/slot hash does not match",
        ),
        Rule(
            "WF014-macos-undefined-symbol",
            "a Mach-O's undefined symbol resolves nowhere dyld will look (Python, libSystem, dylibs)",
        ),
        Rule(
            "WF015-macos-load-path",
            "a Mach-O loads a dylib that is neither a system path nor a file inside the wheel",
        ),
        # Parity with upstream's wheel of the same release (builder.check.parity; check --parity).
        Rule(
            "WF020-parity-missing-extension", "upstream's wheel has an extension module ours lacks"
        ),
        Rule("WF021-parity-missing-module", "upstream's wheel has a Python module ours lacks"),
        Rule("WF022-parity-data-files", "upstream's wheel has a data file ours lacks"),
        Rule("WF023-parity-requires-dist", "Requires-Dist differs from upstream's"),
        Rule(
            "WF024-parity-probe-differs",
            "the recipe's probe prints a different fact than upstream's",
        ),
        Rule("WF025-parity-probe-failed", "the probe or the comparison could not run on one side"),
        Rule(
            "WF026-parity-accepted",
            "a difference from upstream the recipe accepts, with its reason",
        ),
        Rule("WF027-parity-extra", "ours has a module or file upstream's wheel lacks"),
        Rule(
            "WF028-parity-not-compared", "no comparison (no upstream wheel, or no interpreter here)"
        ),
        Rule(
            "WF029-parity-test-fails",
            "a project test passes with upstream's wheel and fails or errors with ours",
        ),
        Rule(
            "WF030-parity-test-differs",
            "a project test is skipped or not run on one side, or passes only with ours",
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    rule: str  # a key of RULES
    severity: Severity
    path: str  # the file inside the wheel; "" when the finding is about the wheel as a whole
    message: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule id {self.rule!r}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def error(rule: str, path: str, message: str) -> Finding:
    return Finding(rule, "error", path, message)


def warning(rule: str, path: str, message: str) -> Finding:
    return Finding(rule, "warning", path, message)
