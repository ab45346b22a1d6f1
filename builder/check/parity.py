"""Parity with upstream: is our wheel what upstream's wheel of the same release is, on another platform?

Three comparisons, all pure functions over data (builder.build.parity runs the programs):

- inventory (`inventory`, `compare_inventories`): the extension modules (by module name, without the
  platform suffix), the Python modules and packages, the data files and `Requires-Dist` of two wheels;
- probe output (`compare_probe`): the lines a recipe's `[parity] probe` printed with upstream's wheel on
  the host and with ours under qemu, compared key by key (the key is a line's first word);
- the project's own tests (`parse_test_outcomes`, `compare_tests`): the outcome of every pytest test id
  when the recipe's `[test] test-command` ran with upstream's wheel and with ours; a test that passes
  with upstream's wheel and fails or errors with ours is an error, other differences are warnings.

A difference is an error finding unless the recipe's `[parity] accept` names it with a reason; then it
is reported as accepted (a warning that carries the reason), never silently dropped.
"""

from __future__ import annotations

import email.parser
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import parse_wheel_filename

from .findings import Finding, error, warning

MISSING_EXTENSION = "WF020-parity-missing-extension"
MISSING_MODULE = "WF021-parity-missing-module"
DATA_FILES = "WF022-parity-data-files"
REQUIRES_DIST = "WF023-parity-requires-dist"
PROBE_DIFFERS = "WF024-parity-probe-differs"
PROBE_FAILED = "WF025-parity-probe-failed"
ACCEPTED = "WF026-parity-accepted"
EXTRA = "WF027-parity-extra"
NOT_COMPARED = "WF028-parity-not-compared"
TEST_FAILS = "WF029-parity-test-fails"
TEST_DIFFERS = "WF030-parity-test-differs"


class Accepted(Protocol):
    """An accepted difference, as `builder.recipes.recipe.Accepted` holds one from a recipe."""

    @property
    def kind(self) -> str: ...  # "key" | "line" | "file" | "requirement" | "test"

    @property
    def value(self) -> str: ...

    @property
    def reason(self) -> str: ...


# Extension module file names: the part before these is the module's path.
_EXT_SUFFIX = re.compile(
    r"(\.cpython-\d+[a-z]*-[a-z0-9_-]+|\.abi3|\.pypy\d+-pp\d+-[a-z0-9_-]+)?\.so$"
    r"|\.cp\d+t?-win[a-z0-9_]*\.pyd$|\.pyd$"
)


@dataclass(frozen=True)
class Inventory:
    """What a wheel installs, in platform-neutral names."""

    wheel: str
    extensions: frozenset[str]  # dotted module names of extension modules
    modules: frozenset[str]  # dotted names of Python modules (`pkg.mod`, `pkg` for __init__)
    data: frozenset[
        str
    ]  # other installed files: package data, and <name>.data/{data,scripts,headers}/
    requires: frozenset[str]  # Requires-Dist, normalised by packaging


def _module_name(path: str) -> str:
    return path.replace("/", ".")


def inventory(wheel: Path) -> Inventory:
    """Read a wheel's inventory; raise ValueError naming the wheel when it cannot be read."""
    parse_wheel_filename(wheel.name)  # InvalidWheelFilename (a ValueError) names the file
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            metadata_name = next(
                (n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None
            )
            metadata = zf.read(metadata_name).decode("utf-8", "replace") if metadata_name else ""
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{wheel}: cannot read the wheel: {exc}") from exc
    extensions: set[str] = set()
    modules: set[str] = set()
    data: set[str] = set()
    for n in names:
        top, _, rest = n.partition("/")
        if top.endswith(".dist-info"):
            continue
        if top.endswith(".data"):
            kind, _, inner = rest.partition("/")
            if kind in ("purelib", "platlib"):
                n, top = inner, inner.split("/", 1)[0]
            else:  # data, scripts, headers: installed outside site-packages
                data.add(f"{kind}/{inner}")
                continue
        if top.endswith(".libs"):  # what auditwheel/delocate grafted: platform-specific by nature
            continue
        base = n.rsplit("/", 1)[-1]
        if m := _EXT_SUFFIX.search(base):
            extensions.add(_module_name(n[: len(n) - len(base) + m.start()]))
        elif n.endswith(".py"):
            mod = n.removesuffix(".py").removesuffix("/__init__")
            modules.add(_module_name(mod))
        elif "__pycache__/" in n or n.endswith((".pyc", ".pyo")):
            continue
        else:
            data.add(n)
    requires = set()
    for line in email.parser.Parser().parsestr(metadata).get_all("Requires-Dist") or ():
        try:
            requires.add(str(Requirement(line)))
        except InvalidRequirement:
            requires.add(line.strip())
    return Inventory(
        wheel.name,
        frozenset(extensions),
        frozenset(modules),
        frozenset(data),
        frozenset(requires),
    )


@dataclass
class Comparison:
    """What was compared and what matched; findings say what did not."""

    compared: dict[str, int] = field(default_factory=dict)  # what -> how many items upstream has
    matched: dict[str, int] = field(default_factory=dict)  # what -> how many of ours match
    findings: list[Finding] = field(default_factory=list)

    def add(self, what: str, upstream: int, matched: int) -> None:
        self.compared[what] = self.compared.get(what, 0) + upstream
        self.matched[what] = self.matched.get(what, 0) + matched

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


def _accepted(accept: Sequence[Accepted], kind: str, value: str) -> Accepted | None:
    return next((a for a in accept if a.kind == kind and a.value == value), None)


def compare_inventories(
    ours: Inventory, upstream: Inventory, accept: Sequence[Accepted] = ()
) -> Comparison:
    """Findings for every extension, module, data file or requirement that differs."""
    result = Comparison()
    sets = (
        ("extension modules", ours.extensions, upstream.extensions, MISSING_EXTENSION, "file"),
        ("Python modules", ours.modules, upstream.modules, MISSING_MODULE, "file"),
        ("data files", ours.data, upstream.data, DATA_FILES, "file"),
        ("Requires-Dist", ours.requires, upstream.requires, REQUIRES_DIST, "requirement"),
    )
    for what, mine, theirs, rule, kind in sets:
        result.add(what, len(theirs), len(mine & theirs))
        for item in sorted(theirs - mine):
            if a := _accepted(accept, kind, item):
                result.findings.append(
                    warning(
                        ACCEPTED, item, f"{what}: {item} is upstream's only (accepted: {a.reason})"
                    )
                )
            else:
                result.findings.append(
                    error(rule, item, f"{what}: {item} is in {upstream.wheel}, not in {ours.wheel}")
                )
        for item in sorted(mine - theirs):
            if a := _accepted(accept, kind, item):
                result.findings.append(
                    warning(ACCEPTED, item, f"{what}: {item} is ours only (accepted: {a.reason})")
                )
            elif rule == REQUIRES_DIST:  # a dependency upstream does not declare changes installs
                result.findings.append(
                    error(rule, item, f"{what}: {item} is in {ours.wheel}, not in {upstream.wheel}")
                )
            else:
                result.findings.append(
                    warning(
                        EXTRA, item, f"{what}: {item} is in {ours.wheel}, not in {upstream.wheel}"
                    )
                )
    return result


# --- probe output ---------------------------------------------------------------------------------


def probe_lines(output: str) -> list[str]:
    """The facts a probe printed: non-empty lines, trailing blanks removed."""
    return [line.rstrip() for line in output.splitlines() if line.strip()]


def line_key(line: str) -> str:
    return line.split(None, 1)[0] if line.strip() else ""


def _by_key(lines: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in lines:
        out.setdefault(line_key(line), []).append(line)
    return out


def compare_probe(
    ours: Sequence[str], upstream: Sequence[str], accept: Sequence[Accepted] = ()
) -> Comparison:
    """Key by key: equal lines match; a differing key is an error unless accepted by key or line."""
    result = Comparison()
    mine, theirs = _by_key(ours), _by_key(upstream)
    for key in sorted(set(mine) | set(theirs)):
        a_lines, b_lines = mine.get(key, []), theirs.get(key, [])
        if a_lines == b_lines:
            result.add("probe lines", len(b_lines), len(b_lines))
            continue
        result.add("probe lines", len(b_lines), len([x for x in a_lines if x in b_lines]))
        only_ours = [x for x in a_lines if x not in b_lines]
        only_theirs = [x for x in b_lines if x not in a_lines]
        by_key = _accepted(accept, "key", key)
        # An accepted line of ours stands in for upstream's lines of its key; with no line of
        # ours left, upstream's own lines must be the accepted ones.
        deciding = only_ours or only_theirs
        by_line = [a for x in deciding if (a := _accepted(accept, "line", x)) is not None]
        shown = f"upstream {_show(b_lines)}, ours {_show(a_lines)}"
        if by_key is not None:
            reasons = by_key.reason
        elif len(by_line) == len(deciding):
            reasons = "; ".join(dict.fromkeys(a.reason for a in by_line))
        else:
            result.findings.append(error(PROBE_DIFFERS, key, f"probe {key}: {shown}"))
            continue
        result.findings.append(
            warning(ACCEPTED, key, f"probe {key}: {shown} (accepted: {reasons})")
        )
    return result


def _show(lines: Sequence[str]) -> str:
    if not lines:
        return "(no line)"
    return " | ".join(repr(x) for x in lines)


# --- the project's own tests ----------------------------------------------------------------------

TEST_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
_FAILING = frozenset({"failed", "error"})
# The Comparison key of the tests: how many test ids had the same outcome on both sides.
TESTS = "tests same outcome"


@dataclass(frozen=True)
class TestRun:
    """What one run of a project's tests gave: an outcome per pytest test id."""

    __test__ = False  # not a pytest class

    # test id -> one of TEST_OUTCOMES
    outcomes: dict[str, str]
    # a file or folder pytest could not collect ("error") or skipped whole ("skipped"): every test
    # under it has that outcome on this side
    collect: dict[str, str] = field(default_factory=dict)
    # test or collector id -> the first line of why it failed or was skipped
    messages: dict[str, str] = field(default_factory=dict)

    def outcome(self, test_id: str) -> str | None:
        if found := self.outcomes.get(test_id) or self.collect.get(test_id):
            return found
        return next((o for c, o in self.collect.items() if covers(c, test_id)), None)

    def counts(self) -> dict[str, int]:
        """How many tests had each outcome (collection errors and skips counted as `collect-...`)."""
        tests, collect = Counter(self.outcomes.values()), Counter(self.collect.values())
        out = {o: tests[o] for o in TEST_OUTCOMES if tests[o]}
        return out | {f"collect-{o}": n for o, n in sorted(collect.items())}

    def message(self, test_id: str) -> str:
        if found := self.messages.get(test_id):
            return found
        return next((m for c, m in self.messages.items() if covers(c, test_id)), "")


def covers(prefix: str, test_id: str) -> bool:
    """Whether `prefix` (a test id, a test file, a folder, "" for all) names `test_id`: `t.py::f`
    covers `t.py::f[1]`, `t.py` covers `t.py::C::f`, `tests` covers `tests/t.py::f`."""
    return (
        prefix == ""
        or test_id == prefix
        or test_id.startswith((prefix + "::", prefix + "[", prefix.rstrip("/") + "/"))
    )


def _phase_outcome(when: str, outcome: str, xfail: bool) -> str | None:
    """The outcome one pytest report gives its test (None: this phase says nothing)."""
    if when == "call":
        if outcome == "passed":
            return "xpassed" if xfail else "passed"
        if outcome == "skipped":
            return "xfailed" if xfail else "skipped"
        return "failed"
    if outcome == "failed":  # setup or teardown
        return "error"
    if when == "setup" and outcome == "skipped":
        return "xfailed" if xfail else "skipped"
    return None


def parse_test_outcomes(text: str, project_dir: str = "") -> TestRun:
    """Fold the JSON lines of `builder/build/wheelfarm_outcomes.py` (one per pytest report) into
    a TestRun. An absolute `project_dir` in a test id becomes `{project}`, so that two unpacked
    copies of one sdist give the same ids. Lines that are not such records are ignored."""
    import json

    outcomes: dict[str, str] = {}
    collect: dict[str, str] = {}
    messages: dict[str, str] = {}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            test_id, when, outcome = str(rec["id"]), str(rec["when"]), str(rec["outcome"])
        except (ValueError, KeyError, TypeError):
            continue
        if project_dir:
            test_id = test_id.replace(project_dir.rstrip("/"), "{project}")
        message = str(rec.get("message") or "")
        if when == "collect":
            if outcome in ("failed", "skipped"):
                collect[test_id] = "error" if outcome == "failed" else "skipped"
                if message:
                    messages.setdefault(test_id, message)
            continue
        found = _phase_outcome(when, outcome, bool(rec.get("xfail")))
        if found is None:
            continue
        before = outcomes.get(test_id)
        if before is None or (before == "passed" and found == "error"):  # a failing teardown
            outcomes[test_id] = found
            if message and found in _FAILING:
                messages[test_id] = message
    return TestRun(outcomes, collect, messages)


def compare_tests(ours: TestRun, upstream: TestRun, accept: Sequence[Accepted] = ()) -> Comparison:
    """Test id by test id. Same outcome (failing on both counts as the same): a match. Passed with
    upstream's wheel and failed or errored with ours: an error. Any other difference (skipped or not
    run on one side, passing only with ours, xfail against xpass): a warning. `[parity] accept`
    entries of kind `test` (a test id, or a file or folder of tests) turn either into an accepted
    warning that carries the reason."""
    result = Comparison()
    tests = set(ours.outcomes) | set(upstream.outcomes)
    collectors = {
        c for c in set(ours.collect) | set(upstream.collect) if not any(covers(c, t) for t in tests)
    }
    for test_id in sorted(tests | collectors):
        theirs, mine = upstream.outcome(test_id), ours.outcome(test_id)
        same = theirs == mine or (theirs in _FAILING and mine in _FAILING)
        result.add(TESTS, 1, int(same))
        if same:
            continue
        shown = f"test {test_id}: upstream {theirs or 'not run'}, ours {mine or 'not run'}"
        why = ours.message(test_id) if mine in _FAILING else ""
        if why:
            shown += f" ({why})"
        if a := next((a for a in accept if a.kind == "test" and covers(a.value, test_id)), None):
            result.findings.append(warning(ACCEPTED, test_id, f"{shown} (accepted: {a.reason})"))
        elif theirs == "passed" and mine in _FAILING:
            result.findings.append(error(TEST_FAILS, test_id, shown))
        else:
            result.findings.append(warning(TEST_DIFFERS, test_id, shown))
    return result


def not_compared(reason: str, path: str = "") -> Finding:
    return warning(NOT_COMPARED, path, reason)


def failed(message: str, path: str = "") -> Finding:
    return error(PROBE_FAILED, path, message)
