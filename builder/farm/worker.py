"""One nightly build job in its own process: `python -m builder.farm.worker JOB.json OUT LOGS`.

The nightly starts this under builder.farm.sandbox (no secrets, index storage read-only) and reads the
BuildResult as JSON from the last line of stdout, and each step (and warning) as it happens from the
lines on stderr that start with STEP_PREFIX. A crash here costs one job, never the nightly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from builder.build.pipeline import build_job
from builder.plan.planner import Job

STEP_PREFIX = "wheelfarm-step: "  # one progress line on stderr; the nightly shows it live


def _step(message: str) -> None:
    sys.stderr.write(STEP_PREFIX + " ".join(message.split()) + "\n")
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    job_file, out_dir, log_dir = argv
    job = Job.from_dict(json.loads(Path(job_file).read_text()))
    result = build_job(job, out_dir=Path(out_dir), log_dir=Path(log_dir), progress=_step)
    sys.stdout.write("\n" + json.dumps(result.to_dict()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
