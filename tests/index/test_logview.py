"""The log page's reading of a build log: sections per step, folded noise, outcome and key lines."""

from __future__ import annotations

import os
from pathlib import Path

from builder.common.buildlog import BuildLog
from index_server.logview import view


def test_a_real_build_log_is_split_into_steps_with_noise_folded(tmp_path: Path) -> None:
    key = "src/x.c:3:5: error: expected expression"
    with BuildLog(tmp_path / "b.log") as log:
        log.write("wheelfarm build x 1.0 cp3.11 manylinux_2_17_aarch64 (cross)")
        log.run(["sh", "-c", "true"], step="prepare", env={**os.environ, "CC": "zig cc"})
        log.section("build: pip wheel .")
        log.write("  CC=zig cc")  # the environment dump right under the heading
        for i in range(5):
            log.write(f"  copying x/mod{i}.py -> build/lib/x")
        log.write("  !!\n  SetuptoolsDeprecationWarning: License classifiers are deprecated.\n  !!")
        log.write(key)
        log.write("  CFLAGS=-O2 is output here, not environment")
        log.section(f"result: failed at build: {key}")
    v = view((tmp_path / "b.log").read_text(), key)
    assert (v.outcome, v.failed_step) == ("failed", "build")
    assert v.errors[0] == key
    steps = {s.step: s for s in v.sections}
    assert list(steps) == ["start", "prepare", "build", "result"]
    build = steps["build"]
    assert build.open and build.has_key and not steps["prepare"].open
    kinds = [c.kind for c in build.chunks]
    assert kinds[0] == "env" and "noise" in kinds
    text = next(c for c in build.chunks if c.key is not None)
    assert text.lines[text.key] == key and text.kind == "text"
    assert any(
        "is output here" in line for c in build.chunks if c.kind == "text" for line in c.lines
    )
    noise = [line for c in build.chunks if c.kind == "noise" for line in c.lines]
    assert any("SetuptoolsDeprecationWarning" in line for line in noise)
    assert sum("copying" in line for line in noise) == 5


def test_an_unfinished_log_opens_at_its_end() -> None:
    v = view("==== [    0.1s] fetch: x\n  downloading\n==== [    2.0s] build: y\n  compiling\n")
    assert v.outcome is None and [s.open for s in v.sections] == [False, True]
