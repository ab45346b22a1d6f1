"""What the nightly and build print when their output is not a terminal: plain lines, nothing cut."""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from builder.cli.nightly import _print
from builder.cli.progress import NightlyDisplay, print_rows
from builder.common.outcome import Outcome
from builder.farm.nightly import Cell, JobEvent, NightlyReport

LONG_KEY = (
    "confluent_kafka/src/confluent_kafka.c:1234:5: error: call to undeclared function "
    "'rd_kafka_new_with_a_really_long_name'; ISO C99 and later do not support implicit declarations"
)


WARNING = (
    "librdkafka: librdkafka.so.1 needs glibc 2.28 (above the target's 2.17): fcntl64@GLIBC_2.28; "
    "the wheel will only reach manylinux_2_28"
)


def _report() -> NightlyReport:
    cells = (
        Cell("confluent-kafka", "2.0.2", "3.12", "manylinux_2_17_aarch64", Outcome.FAILED,
             "build: failed", key_line=LONG_KEY),
        Cell("python-levenshtein", "0.25.1", "3.11", "manylinux_2_28_aarch64", Outcome.PUBLISHED,
             "", wheel="python_levenshtein-0.25.1-cp311-cp311-manylinux_2_28_aarch64.whl"),
    )  # fmt: skip
    warnings = (
        "uamqp 1.6.11 cp3.11 manylinux_2_17_aarch64: openssl: libssl.so.3 needs glibc 2.34",
    )
    return NightlyReport("run-1", cells, ("recipes/x.toml: bad",), 12.0, warnings)


def test_summary_in_a_60_column_pipe_cuts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        console = Console(file=pipe, highlight=False)
        assert not console.is_terminal and console.width == 60
        _print(_report(), console)
    with os.fdopen(read) as fh:
        out = fh.read()
    assert "…" not in out and "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["project", "version", "python", "target", "status", "reason", "/",
                                "key", "line"]  # fmt: skip
    assert lines[1].startswith(
        "confluent-kafka     2.0.2    3.12    manylinux_2_17_aarch64  failed"
    )
    assert lines[1].endswith(LONG_KEY)  # one row, unwrapped: grep finds it whole
    assert "python-levenshtein  0.25.1   3.11    manylinux_2_28_aarch64  published" in lines[2]
    assert "error: recipes/x.toml: bad" in out
    assert f"warning: {_report().warnings[0]}" in out  # the warnings again, in the summary


def test_on_a_terminal_long_cells_wrap_instead_of_being_cut() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=60, force_terminal=True, color_system=None)
    print_rows(console, ("project", "target"), [("confluent-kafka", "manylinux_2_17_aarch64")])
    out = buf.getvalue()
    assert "…" not in out and "confluent-kafka" in out.replace("│\n│", "")
    assert "manylinux_2_17_aarch64" in out or "manylinux_2_" in out  # folded, never an ellipsis


def test_live_events_become_plain_lines_when_not_a_terminal() -> None:
    buf = io.StringIO()
    display = NightlyDisplay(Console(file=buf, width=60), jobs=2)
    key = ("confluent-kafka", "2.0.2", "3.11", "manylinux_2_17_aarch64")
    with display:
        display.say("planning 6 recipes")
        display.event(JobEvent("queued", *key))
        display.event(JobEvent("start", *key, "starting"))
        display.event(JobEvent("step", *key, "repairing confluent_kafka-2.0.2-cp311.whl"))
        display.event(JobEvent("warning", *key, WARNING))
        display.event(JobEvent("warning", *key, WARNING))  # once only
        display.event(JobEvent("finish", *key, "published", 61.0))
    lines = buf.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines if line[:2].isdigit()] == [
        "planning 6 recipes",
        "confluent-kafka 2.0.2 cp3.11 manylinux_2_17_aarch64: starting",
        "confluent-kafka 2.0.2 cp3.11 manylinux_2_17_aarch64: repairing "
        "confluent_kafka-2.0.2-cp311.whl",
        "confluent-kafka 2.0.2 cp3.11 manylinux_2_17_aarch64: published in 61 s "
        "(1 done, 0 failed, 0 running, 0 queued)",
    ]
    assert lines.count(f"warning: {WARNING}") == 1  # longer than 60 columns, still one line
