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
