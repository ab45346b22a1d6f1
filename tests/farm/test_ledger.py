"""The build ledger on SQLite and on a real PostgreSQL server: the same tests over both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from builder.farm.ledger import (
    SCHEMA_VERSION,
    Action,
    Inputs,
    Ledger,
    LedgerError,
    Outcome,
    WheelRecord,
    attempts,
    database_url,
)
from builder.plan.planner import Job

TOOLS = {"zig": "0.13.0", "auditwheel": "6.1.0"}


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite3")
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def ledger(ledger_url):
    with Ledger.open(ledger_url, backoff_base=100.0, backoff_cap=1000.0) as led:
        yield led


def job(
    i: int = 0, *, project: str = "demo", python: str = "3.11", target="manylinux_2_17_aarch64"
) -> Job:
    version = f"1.0.{i}"
    return Job(
        project=project,
        version=version,
        sdist_url=f"https://files.example/{project}-{version}.tar.gz",
        sdist_sha256=f"{i:064x}",
        sdist_filename=f"{project}-{version}.tar.gz",
        python=python,
        target=target,
        reason="missing upstream",
        recipe_path=f"recipes/{project}.toml",
    )


def inputs(j: Job, recipe_hash: str = "r1", **tools: str) -> Inputs:
    return Inputs.for_job(j, recipe_hash, {**TOOLS, **tools})


def test_input_key_is_stable_and_covers_every_input():
    j = job()
    a = Inputs.for_job(j, "r1", {"zig": "0.13.0", "auditwheel": "6.1.0"})
    b = Inputs.for_job(j, "r1", {"auditwheel": "6.1.0", "zig": "0.13.0"})
    assert a.key == b.key and len(a.key) == 64
    assert Inputs.from_dict(json.loads(json.dumps(a.to_dict()))).key == a.key
    changed = [
        Inputs.for_job(j, "r2", TOOLS),
        Inputs.for_job(job(1), "r1", TOOLS),
        Inputs.for_job(job(python="3.12"), "r1", TOOLS),
        Inputs.for_job(job(target="musllinux_1_2_aarch64"), "r1", TOOLS),
        Inputs.for_job(j, "r1", {**TOOLS, "zig": "0.14.0"}),
    ]
    assert len({a.key, *(c.key for c in changed)}) == 1 + len(changed)


def test_database_url_forms(tmp_path):
    assert database_url(tmp_path / "l.db") == f"sqlite:///{tmp_path / 'l.db'}"
    assert database_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    with pytest.raises(LedgerError, match="unsupported ledger URL"):
        database_url("mysql://u@h/db")


def test_default_ledger_is_sqlite_in_wal_mode_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    with Ledger.open() as led:
        assert led.engine.dialect.name == "sqlite"
        with led.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "data" / "ledger.sqlite3").is_file()


def test_schema_created_once_and_newer_schema_refused(ledger_url):
    with Ledger.open(ledger_url) as led:
        assert led.schema_version == SCHEMA_VERSION
    with Ledger.open(ledger_url) as led:  # reopening migrates nothing twice
        with led.engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM schema_version")).scalar()
            assert count == SCHEMA_VERSION  # one row per migration applied
        with led.engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO schema_version (version, applied_at) VALUES (:v, 0)"),
                {"v": SCHEMA_VERSION + 1},
            )
    with pytest.raises(LedgerError, match="newer than this wheelfarm understands"):
        Ledger.open(ledger_url)


def test_a_version_1_ledger_is_migrated_to_the_one_outcome_vocabulary(ledger_url):
    """Ledgers written before builder.common.outcome said "not-tested"; migration 2 renames it."""
    j = job()
    with Ledger.open(ledger_url) as led:
        aid = led.start_attempt(j, inputs(j))
        led.finish_attempt(aid, Outcome.CHECKED_NOT_RUN)
        with led.engine.begin() as conn:  # back to what a version-1 wheelfarm left
            conn.execute(sa.text("UPDATE attempts SET outcome = 'not-tested'"))
            conn.execute(sa.text("DELETE FROM schema_version WHERE version > 1"))
    with Ledger.open(ledger_url) as led:
        assert led.schema_version == SCHEMA_VERSION
        assert led.get(aid).outcome is Outcome.CHECKED_NOT_RUN


def test_attempt_is_recorded_with_inputs_outcome_log_and_wheels(ledger, tmp_path):
    j = job()
    inp = inputs(j)
    aid = ledger.start_attempt(j, inp)
    running = ledger.get(aid)
    assert running.outcome is Outcome.RUNNING and running.finished_at is None
    wheel = "demo-1.0.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    ledger.finish_attempt(
        aid, Outcome.TESTED, log_path=tmp_path / "a.log", wheels=[(wheel, "ab" * 32)]
    )
    done = ledger.get(aid)
    assert done.outcome is Outcome.TESTED
    assert done.input_key == inp.key and done.inputs == inp and done.inputs.toolchain == TOOLS
    assert done.wheels == (WheelRecord(wheel, "ab" * 32),)
    assert done.log_path == str(tmp_path / "a.log")
    assert done.duration is not None and done.duration >= 0
    assert done.job == j.to_dict() and Job.from_dict(done.job) == j
    assert (done.failure_class, done.transient, done.key_line) == (None, None, None)
    ledger.mark_published(aid)
    assert ledger.get(aid).outcome is Outcome.PUBLISHED
    with pytest.raises(ValueError):
        ledger.finish_attempt(aid, "running")
    with pytest.raises(LedgerError, match="no attempt"):
        ledger.finish_attempt(10_000, Outcome.BUILT)


def test_start_attempt_is_idempotent_per_run_and_inputs(ledger_url):
    j = job()
    with Ledger.open(ledger_url, run_id="run-1") as led:
        first = led.start_attempt(j, inputs(j))
        assert led.start_attempt(j, inputs(j)) == first
        other = led.start_attempt(j, inputs(j, "r2"))
        assert other != first
    with Ledger.open(ledger_url, run_id="run-1") as resumed:
        assert resumed.start_attempt(j, inputs(j)) == first
        assert [a.id for a in resumed.run_attempts()] == [first, other]
    with Ledger.open(ledger_url, run_id="run-2") as later:
        assert later.start_attempt(j, inputs(j)) not in (first, other)
        assert len(later.attempts_for(j)) == 3


def test_decide_skips_done_work_and_rebuilds_changed_inputs(ledger):
    j = job()
    d = ledger.decide(j, inputs(j))
    assert (d.action, d.reason, d.previous) == (Action.BUILD, "new", None)
    aid = ledger.start_attempt(j, inputs(j))
    assert ledger.decide(j, inputs(j)).reason == "interrupted"  # started, never finished
    ledger.finish_attempt(aid, Outcome.CHECKED_NOT_RUN)
    d = ledger.decide(j, inputs(j))
    assert (d.action, d.reason, d.previous.id) == (Action.SKIP, "done", aid)
    assert not d.run
    for changed in (inputs(j, "r2"), inputs(j, zig="0.14.0")):
        d = ledger.decide(j, changed)
        assert (d.action, d.reason) == (Action.BUILD, "changed")
    # Another cell of the same project is independent.
    assert ledger.decide(job(python="3.12"), inputs(job(python="3.12"))).reason == "new"


def test_deterministic_failure_is_not_retried_until_inputs_change(ledger):
    j = job()
    aid = ledger.start_attempt(j, inputs(j))
    ledger.finish_attempt(
        aid,
        Outcome.FAILED,
        failure_class="missing-header",
        transient=False,
        key_line="x.c:1:10: fatal error: 'foo.h' file not found",
    )
    failed = ledger.get(aid)
    assert (failed.failure_class, failed.transient) == ("missing-header", False)
    d = ledger.decide(j, inputs(j), now=time.time() + 10**7)
    assert (d.action, d.reason) == (Action.SKIP, "failed")
    assert ledger.decide(j, inputs(j, "r2")).action is Action.BUILD


def test_transient_failures_back_off_exponentially(ledger_url):
    j = job()
    inp = inputs(j)
    finished: list[float] = []
    for n in range(3):
        with Ledger.open(ledger_url, run_id=f"run-{n}", backoff_base=100, backoff_cap=250) as led:
            aid = led.start_attempt(j, inp)
            led.finish_attempt(
                aid, Outcome.FAILED, failure_class="network", transient=True, key_line="reset"
            )
            finished.append(led.get(aid).finished_at)
            wait = min(250, 100 * 2**n)  # 100, 200, then capped at 250
            early = led.decide(j, inp, now=finished[-1] + wait - 1)
            assert (early.action, early.reason) == (Action.SKIP, "backoff")
            assert early.not_before == pytest.approx(finished[-1] + wait)
            due = led.decide(j, inp, now=finished[-1] + wait)
            assert (due.action, due.reason) == (Action.RETRY, "transient")
    with Ledger.open(ledger_url, run_id="run-3") as led:
        aid = led.start_attempt(j, inp)
        led.finish_attempt(aid, Outcome.BUILT)
        assert led.decide(j, inp, now=0).reason == "done"


def test_history_and_summary(ledger):
    a = ledger.start_attempt(job(0), inputs(job(0)))
    ledger.finish_attempt(a, Outcome.TESTED)
    b = ledger.start_attempt(job(1), inputs(job(1)))
    ledger.finish_attempt(
        b, Outcome.FAILED, failure_class="compiler-error", transient=False, key_line="error: x"
    )
    c = ledger.start_attempt(job(0, project="other"), inputs(job(0, project="other")))
    ledger.finish_attempt(c, Outcome.PUBLISHED)
    # A newer attempt for a cell replaces the older in the summary (changed recipe, now built).
    d = ledger.start_attempt(job(1), inputs(job(1), "r2"))
    ledger.finish_attempt(d, Outcome.BUILT)
    assert [x.id for x in ledger.history("demo")] == [d, b, a]
    s = ledger.summary()
    assert (s.cells, s.projects, s.attempts) == (3, 2, 4)
    assert s.by_outcome["tested"] == 1 and s.by_outcome["built"] == 1
    assert s.by_outcome["published"] == 1 and s.by_outcome["failed"] == 0
    assert s.failures == () and s.last_run == ledger.run_id and s.corrupt == ()
    e = ledger.start_attempt(job(2), inputs(job(2)))
    ledger.finish_attempt(
        e, Outcome.FAILED, failure_class="compiler-error", transient=False, key_line="error: y"
    )
    s = ledger.summary()
    assert [f.key_line for f in s.failures] == ["error: y"]
    assert json.loads(json.dumps(s.to_dict()))["by_outcome"]["failed"] == 1


def test_threads_share_one_ledger(ledger):
    def work(t: int) -> None:
        for i in range(10):
            j = job(t * 100 + i)
            ledger.finish_attempt(ledger.start_attempt(j, inputs(j)), Outcome.BUILT)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    attempts_ = ledger.run_attempts()
    assert len(attempts_) == 40 and all(a.outcome is Outcome.BUILT for a in attempts_)


def test_unreachable_database_is_a_clear_error(tmp_path):
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger.open("postgresql://nobody@127.0.0.1:1/ledger")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger.open(f"sqlite:///{blocker}/sub/ledger.sqlite3")


def test_ledger_command(ledger_url):
    from click.testing import CliRunner

    from builder.cli import main

    with Ledger.open(ledger_url) as led:
        ok = led.start_attempt(job(0), inputs(job(0)))
        led.finish_attempt(ok, Outcome.TESTED, wheels=[("demo-1.0.0-cp311.whl", "00" * 32)])
        bad = led.start_attempt(job(1), inputs(job(1)))
        led.finish_attempt(
            bad, Outcome.FAILED, failure_class="network", transient=True, key_line="reset"
        )
    runner = CliRunner()
    out = runner.invoke(main, ["ledger", "summary", "--db", ledger_url])
    assert out.exit_code == 0, out.output
    assert "2 cell(s) of 1 project(s), 2 attempt(s): 1 tested, 1 failed" in out.output
    assert (
        "failed: demo 1.0.1 3.11 manylinux_2_17_aarch64: network (transient): reset" in out.output
    )
    out = runner.invoke(
        main, ["ledger", "history", "Demo", "--json"], env={"WHEELFARM_LEDGER": ledger_url}
    )
    assert out.exit_code == 0, out.output
    assert [a["outcome"] for a in json.loads(out.output)] == ["failed", "tested"]
    out = runner.invoke(main, ["ledger", "summary", "--db", "mysql://x/y"])
    assert out.exit_code == 1 and "unsupported ledger URL" in out.output


WRITER = textwrap.dedent(
    """
    import sys, time
    from builder.farm.ledger import Inputs, Ledger, Outcome
    from builder.plan.planner import Job

    url, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = Ledger.open(url, run_id=run_id)
    for i in range(n):
        job = Job(project="demo", version=f"1.0.{i}", sdist_url="u", sdist_sha256=f"{i:064x}",
                  sdist_filename=f"demo-1.0.{i}.tar.gz", python="3.11",
                  target="manylinux_2_17_aarch64", reason="r", recipe_path="recipes/demo.toml")
        inputs = Inputs.for_job(job, "r1", {"zig": "0.13.0"})
        decision = ledger.decide(job, inputs)
        if not decision.run:
            print("skip", i, flush=True)
            continue
        aid = ledger.start_attempt(job, inputs)
        print("start", i, aid, flush=True)
        time.sleep(0.03)  # the "build"
        ledger.finish_attempt(aid, Outcome.BUILT, wheels=[(f"demo-1.0.{i}-cp311.whl", f"{i:064x}")])
        print("done", i, aid, flush=True)
    """
)


def test_killed_writer_loses_nothing_and_resumes_without_duplicates(ledger_url, tmp_path):
    n = 60
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    cmd = [sys.executable, str(script), ledger_url, "run-A", str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    finished_before: dict[int, int] = {}
    in_flight = None
    for line in proc.stdout:
        what, i, aid = line.split()
        if what == "done":
            finished_before[int(i)] = int(aid)
        elif len(finished_before) == 8:  # job 8 has started: kill the writer in the middle of it
            proc.send_signal(signal.SIGKILL)
            in_flight = int(aid)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"

    with Ledger.open(ledger_url) as led:
        rows = led.run_attempts("run-A")
        by_id = {a.id: a for a in rows}
        for i, aid in finished_before.items():  # every committed record is intact
            a = by_id[aid]
            assert a.outcome is Outcome.BUILT and a.version == f"1.0.{i}"
            assert a.wheels == (WheelRecord(f"demo-1.0.{i}-cp311.whl", f"{i:064x}"),)
            assert a.finished_at is not None and a.duration is not None
        # No partial row: anything not finished is a complete "running" row.
        for a in rows:
            assert a.outcome in (Outcome.BUILT, Outcome.RUNNING)
            assert (a.finished_at is None) == (a.outcome is Outcome.RUNNING)
        assert by_id[in_flight].outcome is Outcome.RUNNING and len(rows) == 9
        resume_run = led.last_unfinished_run()
        assert resume_run == "run-A"
        finished_at = {a.id: a.finished_at for a in rows if a.outcome is Outcome.BUILT}

    # Resume: the next run picks up the killed run's id and finishes the rest.
    resumed = subprocess.run(
        [sys.executable, str(script), ledger_url, resume_run, str(n)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    skipped = {int(line.split()[1]) for line in resumed.stdout.splitlines() if line[:4] == "skip"}
    assert set(finished_before) <= skipped  # finished jobs were not redone

    with Ledger.open(ledger_url) as led:
        rows = led.run_attempts("run-A")
        assert len(rows) == n == len({a.input_key for a in rows})  # no duplicates
        assert all(a.outcome is Outcome.BUILT for a in rows)
        for aid, when in finished_at.items():
            assert led.get(aid).finished_at == when
        assert led.last_unfinished_run() is None
        assert led.get(in_flight).outcome is Outcome.BUILT  # the interrupted attempt, finished
        victim = finished_before[3]

    # A corrupt row (garbage in a JSON column) is reported and skipped, never fatal.
    engine = sa.create_engine(database_url(ledger_url))
    with engine.begin() as conn:
        conn.execute(attempts.update().where(attempts.c.id == victim).values(wheels="{garbage"))
    engine.dispose()
    with Ledger.open(ledger_url) as led:
        history = led.history("demo")
        assert len(history) == n - 1 and victim not in {a.id for a in history}
        assert list(led.corrupt) == [victim] and "wheels" in led.corrupt[victim].error
        summary = led.summary()
        assert summary.cells == n - 1 and [c.id for c in summary.corrupt] == [victim]
        assert led.get(victim) is None
        j = Job.from_dict({**job(3).to_dict(), "sdist_url": "u", "reason": "r"})
        assert led.decide(j, Inputs.for_job(j, "r1", {"zig": "0.13.0"})).action is Action.BUILD
