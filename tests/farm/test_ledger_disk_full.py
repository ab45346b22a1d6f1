"""The SQLite ledger on a tiny tmpfs that fills up: a clear LedgerError, no finished record lost."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support.tiny_disk import TinyDisk, tiny_disk_unavailable

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(tiny_disk_unavailable() is not None, reason=str(tiny_disk_unavailable())),
]

FILLER = Path(__file__).parents[1] / "support" / "fill_ledger.py"


def test_a_full_ledger_disk_is_a_clear_error_and_keeps_every_finished_record(
    tmp_path: Path,
) -> None:
    with TinyDisk(tmp_path / "ledger", size_kb=256) as disk:
        other = disk.view / "other-data"
        other.write_bytes(b"\0" * 65536)  # freed at the end to make room again
        db = disk.mountpoint / "ledger.sqlite3"
        done = disk.run([sys.executable, str(FILLER), "fill", str(db)], timeout=120)
        lines = done.stdout.splitlines()
        assert done.returncode == 3, done.stdout + done.stderr
        assert lines[-1].startswith(f"LEDGER-ERROR: {db}: could not record "), lines[-1]
        assert lines[-1].endswith("database or disk is full; free some space and run again")
        assert "Traceback" not in done.stdout + done.stderr
        finished = [json.loads(line) for line in lines[:-1]]
        assert len(finished) >= 5
        assert disk.free_kb() == 0

        # Read back (inside the namespace) while the disk is still full: every finished record.
        state = dump(disk, db)
        assert state["integrity"] == "ok" and state["summary"]["corrupt"] == []
        by_project = {a["project"]: a for a in state["attempts"]}
        for rec in finished:
            attempt = by_project.pop(rec["project"])
            assert attempt["id"] == rec["id"] and attempt["outcome"] == "tested"
            assert attempt["finished_at"] is not None
            assert [w["sha256"] for w in attempt["wheels"]] == [rec["sha256"]]
        # The refused write left no half row: at most the refused attempt, whole and still running.
        assert [a["outcome"] for a in by_project.values()] in ([], ["running"])
        assert state["summary"]["attempts"] == len(finished) + len(by_project)

        # Space freed: the same ledger records again and still holds everything.
        other.unlink()
        again = disk.run([sys.executable, str(FILLER), "fill", str(db), "2", "after"], timeout=60)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(again.stdout.splitlines()) == 2
        state = dump(disk, db)
        assert state["integrity"] == "ok"
        assert state["summary"]["attempts"] == len(finished) + len(by_project) + 2
        assert state["summary"]["by_outcome"]["tested"] == len(finished) + 2


def dump(disk: TinyDisk, db: Path) -> dict:
    done = disk.run([sys.executable, str(FILLER), "dump", str(db)], timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
