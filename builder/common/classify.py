"""Name a failed build from its log: what went wrong, the line that says so, and whether to retry.

The rules (classes, patterns, order, transience) are data in `failure_rules.toml`; see the comments
there for why the order is what it is.
"""

from __future__ import annotations

import enum
import functools
import re
import signal
import tomllib
from dataclasses import dataclass
from pathlib import Path

RULES_FILE = Path(__file__).with_name("failure_rules.toml")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FailureClass(enum.StrEnum):
    KILLED = "killed"
    TIMEOUT = "timeout"
    TEST_FAILURE = "test-failure"
    HOST_LEAK = "host-leak"
    PYTHON_INCOMPATIBLE = "python-incompatible"
    MISSING_HEADER = "missing-header"
    MISSING_LIBRARY = "missing-library"
    COMPILER_ERROR = "compiler-error"
    NETWORK = "network"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rule:
    cls: FailureClass
    transient: bool
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Failure:
    cls: FailureClass
    transient: bool
    key_line: str  # the log line that says what went wrong ("" if the log has none)
    line_number: int | None = None  # 1-based, in the log as given
    name: str | None = None  # what was missing: header, library or package, when the rule names it

    def to_dict(self) -> dict[str, object]:
        return {
            "class": str(self.cls),
            "transient": self.transient,
            "key_line": self.key_line,
            "line_number": self.line_number,
            "name": self.name,
        }

    def __str__(self) -> str:
        what = f"{self.cls} ({self.name})" if self.name else str(self.cls)
        return f"{what}: {self.key_line}" if self.key_line else what


@functools.cache
def rules(path: Path = RULES_FILE) -> tuple[Rule, ...]:
    data = tomllib.loads(path.read_text())
    return tuple(
        Rule(
            FailureClass(r["class"]),
            bool(r["transient"]),
            tuple(re.compile(p) for p in r["patterns"]),
        )
        for r in data["rule"]
    )


# Exit statuses that tell the story when the log does not: killed by a signal, or `timeout`(1).
_KILLED_STATUSES = {-signal.SIGKILL, 128 + signal.SIGKILL}
_TIMEOUT_STATUSES = {124}


def classify(log: str, *, returncode: int | None = None) -> Failure:
    """Classify a failed build from its log text (and the exit status, when known)."""
    # Stripped: pip -v indents its subprocesses' output.
    lines = [_ANSI.sub("", line).strip() for line in log.splitlines()]
    for rule in rules():
        for number, line in enumerate(lines, 1):
            for pattern in rule.patterns:
                if m := pattern.search(line):
                    name = m.groupdict().get("name")
                    return Failure(rule.cls, rule.transient, line, number, name)
    if returncode in _KILLED_STATUSES:
        return Failure(FailureClass.KILLED, True, _last_line(lines), None)
    if returncode in _TIMEOUT_STATUSES:
        return Failure(FailureClass.TIMEOUT, True, _last_line(lines), None)
    # Unknown failures are not retried blindly: a person reads the key line and fixes the recipe.
    for number in range(len(lines), 0, -1):
        if "error" in lines[number - 1].lower():
            return Failure(FailureClass.UNKNOWN, False, lines[number - 1], number)
    return Failure(FailureClass.UNKNOWN, False, _last_line(lines), None)


def classify_file(path: Path, *, returncode: int | None = None) -> Failure:
    return classify(path.read_text(errors="replace"), returncode=returncode)


def _last_line(lines: list[str]) -> str:
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
