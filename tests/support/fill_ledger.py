"""Fill a ledger until it refuses a write, and read it back: a script to run inside a namespace.

    python fill_ledger.py fill LEDGER_PATH [MAX] [PREFIX]
    python fill_ledger.py dump LEDGER_PATH

`fill` prints one JSON line per attempt whose finish_attempt returned (id, project, wheel sha256):
those must all be readable afterwards. When the ledger refuses a write it prints
`LEDGER-ERROR: <message>` (or `OTHER-ERROR: <traceback>` for anything that is not a LedgerError) and
exits 3. `dump` prints every attempt, the summary and SQLite's integrity check as one JSON object.

(SQLite resolves symbolic links in a database path, so a ledger inside another mount namespace
cannot be opened through /proc/PID/root: it must be read from inside, hence this script.)
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback
from dataclasses import dataclass

from builder.farm.ledger import Inputs, Ledger, LedgerError, Outcome


@dataclass(frozen=True)
class FakeJob:  # the fields the ledger reads from a planned job
    project: str
    version: str
    python: str
    target: str
    sdist_sha256: str


def fill(path: str, limit: int, prefix: str) -> int:
    try:
        ledger = Ledger.open(path)
        for n in range(limit):
            project = f"{prefix}-{n:05d}"
            job = FakeJob(project, "1.0", "3.11", "manylinux_2_17_aarch64", "ab" * 32)
            inputs = Inputs.for_job(job, "recipe-" + "x" * 200, {"zig": "0.13.0"})
            attempt = ledger.start_attempt(job, inputs)
            digest = hashlib.sha256(project.encode()).hexdigest()
            wheel = f"{project.replace('-', '_')}-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"
            ledger.finish_attempt(
                attempt, Outcome.TESTED, wheels=[(wheel, digest)], log_path="/logs/" + "l" * 300
            )
            print(json.dumps({"id": attempt, "project": project, "sha256": digest}), flush=True)
    except LedgerError as exc:
        print(f"LEDGER-ERROR: {exc}", flush=True)
        return 3
    except Exception:
        print("OTHER-ERROR: " + traceback.format_exc().replace("\n", "\\n"), flush=True)
        return 3
    return 0


def dump(path: str) -> int:
    with Ledger.open(path) as ledger:
        summary = ledger.summary()
        with ledger.engine.connect() as conn:
            projects = [r[0] for r in conn.exec_driver_sql("SELECT DISTINCT project FROM attempts")]
            check = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
        attempts = [a.to_dict() for p in projects for a in ledger.history(p)]
    print(json.dumps({"attempts": attempts, "summary": summary.to_dict(), "integrity": check}))
    return 0


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "dump":
        sys.exit(dump(path))
    limit = int(rest[0]) if rest else 1_000_000
    sys.exit(fill(path, limit, rest[1] if len(rest) > 1 else "fill"))
