"""Build a starting recipe to learn what it needs: native libraries found through Debian's metadata
when the build says something is missing (then built and retried), and the wheel's extension modules
for its test. The recipe file is rewritten after each finding, so the reviewed recipe records them.

Used by `wheelfarm recipe new --build`. Rounds: build -> missing files from the log (when it names
none Debian provides: what the sdist's build scripts and sources name) -> Contents lookup ->
[[native]] entries -> build again (at most `max_rounds` lookups), then the test under qemu with
every extension module of the built wheel imported.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from builder.build.natives import target_glibc
from builder.build.natives.resolve import Archive, Missing, missing_from_log, resolve
from builder.build.natives.scripts import missing_from_scripts
from builder.build.pipeline import BuildResult, build_job
from builder.common.classify import FailureClass, classify
from builder.common.fetch import FetchError, fetch_sdist
from builder.common.sdist import SdistError, unpack
from builder.plan.planner import Job
from builder.plan.request import jobs_for_recipe
from builder.plan.starting_recipe import rewrite_recipe, with_findings
from builder.recipes.recipe import load_recipe

Say = Callable[[str], None]


@dataclass
class Exploration:
    result: BuildResult  # the last build (with the test, when the build worked)
    natives: list[dict[str, object]] = field(default_factory=list)  # [[native]] entries added
    extension_modules: list[str] = field(default_factory=list)
    unresolved: list[Missing] = field(default_factory=list)
    rounds: int = 0


def extension_modules(wheel: Path) -> list[str]:
    """Dotted names of the wheel's compiled extension modules (not grafted libraries)."""
    out = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            p = PurePosixPath(name)
            if p.suffix != ".so" or any(part.endswith(".libs") for part in p.parts):
                continue
            if ".data" in p.parts[0]:  # <dist>.data/... is not importable
                continue
            stem = p.name.split(".", 1)[0]
            out.append(".".join([*p.parts[:-1], stem]))
    return sorted(set(out))


def top_level_modules(wheel: Path) -> list[str]:
    """The importable top-level names of a wheel: packages (folders with __init__.py) and modules."""
    out = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            p = PurePosixPath(name)
            if p.parts[0].endswith((".dist-info", ".data", ".libs")):
                continue
            if len(p.parts) == 2 and p.name == "__init__.py":
                out.add(p.parts[0])
            elif len(p.parts) == 1 and p.suffix in (".py", ".so"):
                out.add(p.name.split(".", 1)[0])
    return sorted(n for n in out if n.isidentifier())


def _may_lack_a_library(log: str) -> bool:
    """Whether a failed build's log leaves a missing library possible: not when it failed for
    CPython compatibility, a host leak, the network or a compiler error in the project's code."""
    return classify(log).cls in (
        FailureClass.UNKNOWN,
        FailureClass.MISSING_HEADER,
        FailureClass.MISSING_LIBRARY,
    )


def _named_by_sdist(job: Job, work: Path, target: str) -> list[Missing]:
    """What the job's sdist (from the fetch cache: the build fetched it) names in its build scripts
    and sources that a native library provides."""
    try:
        sdist = fetch_sdist(job.sdist_url, job.sdist_sha256, job.sdist_filename or None)
        src = unpack(sdist, Path(tempfile.mkdtemp(dir=work, prefix="sdist-")))
    except (FetchError, SdistError):
        return []
    return missing_from_scripts(src, target=target)


def explore_recipe(
    path: Path,
    *,
    python: str = "3.11",
    target: str = "manylinux_2_17_aarch64",
    archive: Archive | None = None,
    max_rounds: int = 3,
    sdist: str | None = None,
    sha256: str | None = None,
    index: str | None = None,
    say: Say | None = None,
) -> Exploration:
    """Build the recipe at `path`, add what it was missing, retry; then test its extension modules."""
    say = say or (lambda _m: None)
    (job,) = jobs_for_recipe(
        path, pythons=[python], targets=[target], sdist=sdist, sha256=sha256, index=index
    )
    found = Exploration(result=None)  # type: ignore[arg-type]
    out = Path(tempfile.mkdtemp(prefix="wheelfarm-explore-"))
    named: list[Missing] | None = None  # what the sdist's own files name, read once

    def look_up(missing: list[Missing]) -> list[dict[str, object]]:
        """The [[native]] entries of what Debian provides of `missing` that the recipe lacks."""
        nonlocal archive
        if archive is None:
            from builder.build.toolchain.debian import PrivateApt

            archive = PrivateApt("bookworm", "arm64", contents=True)
        say(f"looking up {', '.join(m.name for m in missing)} in Debian's Contents index")
        resolved, unresolved = resolve(missing, archive, target_glibc=target_glibc(target))
        found.unresolved += [m for m in unresolved if m not in found.unresolved]
        have = {n.name for n in load_recipe(path).native}
        return [r.entry for r in resolved if r.entry["name"] not in have]

    while True:
        say(f"building {job.project} {job.version} (round {found.rounds + 1})")
        result = build_job(job, out_dir=out, run_test=False, progress=say)
        found.result = result
        if result.ok or result.step not in ("build", "deps") or found.rounds >= max_rounds:
            break
        text = result.log.read_text(errors="replace")
        failed_native = None
        if result.step == "deps":  # a found library's own build lacked something: read its log
            m = re.search(r"full log: (\S+\.log)", text)
            failed_native = next(
                (n["name"] for n in found.natives if m and f"/{n['name']}-" in m.group(1)), None
            )
            text = Path(m.group(1)).read_text(errors="replace") if m else ""
        found.unresolved = []  # this round's
        missing = missing_from_log(text)
        new = look_up(missing) if missing else []
        if not new and result.step == "build" and _may_lack_a_library(text):
            # The log names nothing a Debian package provides (a setup.py that failed in its
            # own words): what the sdist's build scripts and sources name.
            if named is None:
                named = _named_by_sdist(job, out, target)
            from_sdist = [m for m in named if m not in missing]
            if from_sdist:
                say(
                    "the build log names no library Debian provides; the sdist names "
                    + ", ".join(f"{m.name} ({m.origin})" for m in from_sdist)
                )
                new = look_up(from_sdist)
        if not new:
            break
        # A library another found library needs is built before it.
        at = next(
            (i for i, n in enumerate(found.natives) if n["name"] == failed_native),
            len(found.natives),
        )
        found.natives[at:at] = new
        found.rounds += 1
        rewrite_recipe(path, with_findings(path.read_text(), natives=found.natives))
    if found.result.ok and found.result.wheel is not None:
        recipe = load_recipe(path)
        found.extension_modules = extension_modules(found.result.wheel)
        # What the wheel holds, not what the sdist's folders suggested (`lib`, `Tests` ...).
        tops = top_level_modules(found.result.wheel)
        imports = list(dict.fromkeys([*tops, *found.extension_modules]))
        if imports != list(recipe.test.imports):
            rewrite_recipe(path, with_findings(path.read_text(), imports=imports))
        say(f"testing {job.project} {job.version} under qemu")
        found.result = build_job(job, out_dir=out, run_test=True, progress=say)
    return found
