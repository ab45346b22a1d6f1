"""The nightly's fan-out cut to GitHub Actions' documented limits.

One matrix job per plan entry fails before building anything once a plan has more than 256 entries
(a first run, a new CPython). Here cibuildwheel runs are packed into *shards*: one matrix job builds
several runs in a row, each shard stays under a per-job time limit, the matrix has at most 256 entries,
the job output that carries it stays far below 1 MB (each entry is a few short strings; the runs
themselves travel in an artifact, `shards.json`), and the total stays under a runner-minute budget:
what does not fit tonight is *deferred* and planned again tomorrow (it is still missing from the index).

Limits (docs.github.com/en/actions/reference/limits and workflow syntax):
- a matrix generates at most 256 jobs per workflow run;
- a job's outputs are at most 1 MB (size approximated as UTF-16), 50 MB per workflow run;
- a job on a GitHub-hosted runner runs at most 6 hours (360 minutes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from builder.build.backends.cibuildwheel import CibwRun
from builder.plan.estimate import MinuteModel

MATRIX_MAX_JOBS = 256
OUTPUT_MAX_BYTES = 1024 * 1024  # per job; GitHub measures the UTF-16 size
HOSTED_JOB_MAX_MINUTES = 360


class ShardError(ValueError):
    """Limits that cannot hold together (e.g. a shard time limit above the hosted job limit)."""


@dataclass(frozen=True)
class Limits:
    max_shards: int = MATRIX_MAX_JOBS
    shard_minutes: float = 300.0  # estimated minutes per shard, under the 360-minute job limit
    budget_minutes: float | None = None  # runner minutes for one night; None: no budget

    def __post_init__(self) -> None:
        if not 1 <= self.max_shards <= MATRIX_MAX_JOBS:
            raise ShardError(f"max shards {self.max_shards}: must be 1..{MATRIX_MAX_JOBS}")
        if not 0 < self.shard_minutes <= HOSTED_JOB_MAX_MINUTES:
            raise ShardError(
                f"shard minutes {self.shard_minutes}: must be above 0 and at most "
                f"{HOSTED_JOB_MAX_MINUTES} (a hosted job's limit)"
            )
        if self.budget_minutes is not None and self.budget_minutes < 0:
            raise ShardError(f"budget {self.budget_minutes}: must not be negative")


@dataclass
class Shard:
    id: str
    runner: str
    runs: list[CibwRun] = field(default_factory=list)
    minutes: float = 0.0

    def matrix_entry(self) -> dict[str, str]:
        return {
            "shard": self.id,
            "runner": self.runner,
            "runs": str(len(self.runs)),
            "minutes": f"{self.minutes:.0f}",
        }

    def to_dict(self) -> dict[str, Any]:
        return self.matrix_entry() | {
            "runs": [r.id for r in self.runs],
            "jobs": sum(len(r.jobs) for r in self.runs),
            "minutes": round(self.minutes, 1),
        }


@dataclass
class Sharding:
    shards: list[Shard]
    deferred: list[tuple[CibwRun, str]]  # run, why
    minutes: Mapping[str, float]  # run id -> estimate
    limits: Limits
    model: MinuteModel

    def matrix(self) -> dict[str, list[dict[str, str]]]:
        return {"include": [s.matrix_entry() for s in self.shards]}

    def github_output(self) -> str:
        """The `$GITHUB_OUTPUT` lines of the plan job (checked against the 1 MB limit)."""
        text = (
            f"matrix={json.dumps(self.matrix(), separators=(',', ':'))}\ncount={len(self.shards)}\n"
        )
        size = len(text.encode("utf-16-le"))
        if size > OUTPUT_MAX_BYTES:  # cannot happen with <= 256 short entries; say so if it does
            raise ShardError(f"job output of {size} bytes exceeds GitHub's {OUTPUT_MAX_BYTES}")
        return text

    def to_dict(self) -> dict[str, Any]:
        scheduled = sum(s.minutes for s in self.shards)
        return {
            "shards": [s.to_dict() for s in self.shards],
            "deferred": [
                {"run": r.id, "jobs": len(r.jobs), "minutes": self.minutes[r.id], "why": why}
                for r, why in self.deferred
            ],
            "summary": {
                "shards": len(self.shards),
                "runs": sum(len(s.runs) for s in self.shards),
                "jobs": sum(len(r.jobs) for s in self.shards for r in s.runs),
                "deferred_runs": len(self.deferred),
                "deferred_jobs": sum(len(r.jobs) for r, _ in self.deferred),
                "runner_minutes": round(scheduled, 1),
                "budget_minutes": self.limits.budget_minutes,
                "shard_minutes": self.limits.shard_minutes,
            },
            "model": self.model.to_dict(),
        }


def shard_runs(
    runs: Sequence[CibwRun],
    natives: Mapping[str, int] | None = None,
    limits: Limits | None = None,
    model: MinuteModel | None = None,
) -> Sharding:
    """Pack runs into shards: first-fit decreasing per runner, under the shard time limit, the
    matrix limit and the budget. Runs are admitted in a stable order (project, version, id) so the
    same plan defers the same runs; a run estimated above the shard limit gets a shard of its own."""
    limits = limits or Limits()
    model = model or MinuteModel()
    natives = natives or {}
    minutes = {r.id: model.run_minutes(len(r.identifiers), natives.get(r.project, 0)) for r in runs}
    if len(minutes) != len(runs):
        raise ShardError("two runs share an id")
    budget = limits.budget_minutes
    admitted: list[CibwRun] = []
    deferred: list[tuple[CibwRun, str]] = []
    spent = 0.0
    for run in sorted(runs, key=lambda r: (r.project, r.version, r.id)):
        if not run.runner:
            deferred.append((run, f"no native runner for {run.platform} {run.archs}"))
        elif budget is not None and spent + minutes[run.id] > budget:
            deferred.append((run, f"over tonight's budget of {budget:g} runner minutes"))
        else:
            admitted.append(run)
            spent += minutes[run.id]

    bins: list[Shard] = []
    for run in sorted(admitted, key=lambda r: (r.runner, -minutes[r.id], r.id)):
        cost = minutes[run.id]
        home = next(
            (
                s
                for s in bins
                if s.runner == run.runner and s.minutes + cost <= limits.shard_minutes
            ),
            None,
        )
        if home is None:
            if len(bins) == limits.max_shards:
                deferred.append((run, f"all {limits.max_shards} matrix jobs are full"))
                continue
            home = Shard(id="", runner=run.runner)
            bins.append(home)
        home.runs.append(run)
        home.minutes += cost
    for number, shard in enumerate(bins, 1):
        shard.id = f"s{number:03d}"
        shard.runs.sort(key=lambda r: r.id)
    return Sharding(bins, deferred, minutes, limits, model)


def load_sharding(doc: Mapping[str, Any], shard_id: str) -> list[str]:
    """The run ids of one shard in a `shards.json` document."""
    for shard in doc.get("shards", []):
        if shard.get("shard") == shard_id:
            return list(shard["runs"])
    known = ", ".join(s.get("shard", "?") for s in doc.get("shards", [])) or "none"
    raise ShardError(f"no shard {shard_id!r} (shards: {known})")
