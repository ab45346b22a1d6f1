"""The wheel checker: prove that a wheel is what its tags say.

Library API (the builder's publish gate and the index server's `--strict` upload check call it):

    from builder.check import check_wheel
    report = check_wheel("dist/pkg-1.0-cp311-cp311-manylinux_2_17_aarch64.whl")
    if not report.ok:
        for finding in report.findings:  # Finding(rule, severity, path, message)
            ...
"""

from __future__ import annotations

from .binaries import Binary, Slice
from .core import check_files, check_wheel
from .findings import RULES, Finding, Rule
from .report import Report, exit_code
from .wheelzip import WheelReadError

__all__ = [
    "RULES",
    "Binary",
    "Finding",
    "Report",
    "Rule",
    "Slice",
    "WheelReadError",
    "check_files",
    "check_wheel",
    "exit_code",
]
