"""A pytest plugin the parity runner loads (`-p wheelfarm_outcomes`) into the project's own tests.

It is copied next to the tested wheel and runs inside the tested interpreter (the host's CPython with
upstream's wheel, Debian's arm64 CPython under qemu with ours), so it imports nothing but the standard
library and works with any pytest since 3.x. Every test report (setup, call, teardown) and every
collection failure or skip is appended as one JSON line to the file named by
`$WHEELFARM_TEST_OUTCOMES`; `builder.check.parity.parse_test_outcomes` folds them into one outcome
per test id.
"""

import json
import os


def _message(report):
    """The first line of why a test failed or was skipped (the `E` line of a collection error)."""
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        text = str(longrepr[-1])
    else:
        text = getattr(getattr(longrepr, "reprcrash", None), "message", "") or ""
        if not text and longrepr is not None:
            lines = [x.strip() for x in str(longrepr).splitlines() if x.strip()]
            errors = [x[1:].strip() for x in lines if x.startswith("E ")]
            text = (errors or lines or [""])[-1]
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else ""


def _write(record):
    path = os.environ.get("WHEELFARM_TEST_OUTCOMES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def pytest_runtest_logreport(report):
    _write(
        {
            "id": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"),
            "message": _message(report) if report.outcome != "passed" else "",
        }
    )


def pytest_collectreport(report):
    if report.outcome != "passed":
        _write(
            {
                "id": report.nodeid,
                "when": "collect",
                "outcome": report.outcome,
                "message": _message(report),
            }
        )
