"""Runner minutes a plan will cost on hosted CI runners: one model for `wheelfarm plan --json` and for
the nightly's sharding (`builder.farm.shards`), so the estimate the plan prints is the one the shards
are cut by.

The model is deliberately simple and stated: a cibuildwheel run (one sdist, one platform, one image)
pays a fixed setup (checkout, install, image pull, sdist download), plus a per-identifier cost
(build, repair, test) and a per-native-library cost (built in before-all, once per run). The figures are
defaults a farm overrides with what its own ledger shows (`--minutes-per-build` etc.); they are an
estimate to budget against, not a measurement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from packaging.utils import canonicalize_name

from builder.common.targets import parse_target
from builder.plan.planner import Job


@dataclass(frozen=True)
class MinuteModel:
    setup: float = 4.0  # per run: checkout, pip install, container image pull, sdist download
    per_build: float = 6.0  # per identifier (one Python on one target): build, repair, test
    per_native: float = 8.0  # per [[native]] library: built once per run (before-all)

    def run_minutes(self, builds: int, natives: int = 0) -> float:
        return self.setup + self.per_build * builds + self.per_native * natives

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def platform_of(target: str) -> str:
    """The runner family a target builds on: "macos" or "linux"."""
    return "macos" if parse_target(target).os == "macosx" else "linux"


def run_key(job: Job) -> tuple[str, str, str, str]:
    """The jobs one cibuildwheel run builds together: one project version, one target (image)."""
    return (str(canonicalize_name(job.project)), job.version, platform_of(job.target), job.target)


def estimate(
    jobs: Iterable[Job], natives: Mapping[str, int] | None = None, model: MinuteModel | None = None
) -> dict[str, object]:
    """`{"runner_minutes", "runs", "jobs", "by_platform": {platform: minutes}, "model"}` for `jobs`.

    `natives` maps a project's canonical name to its number of [[native]] libraries.
    """
    model = model or MinuteModel()
    natives = natives or {}
    runs: dict[tuple[str, str, str, str], int] = {}
    count = 0
    for job in jobs:
        key = run_key(job)
        runs[key] = runs.get(key, 0) + 1
        count += 1
    by_platform: dict[str, float] = {}
    for (project, _version, plat, _target), builds in runs.items():
        minutes = model.run_minutes(builds, natives.get(project, 0))
        by_platform[plat] = by_platform.get(plat, 0.0) + minutes
    return {
        "runner_minutes": round(sum(by_platform.values()), 1),
        "runs": len(runs),
        "jobs": count,
        "by_platform": {k: round(v, 1) for k, v in sorted(by_platform.items())},
        "model": model.to_dict(),
    }
