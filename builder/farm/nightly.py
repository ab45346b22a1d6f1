"""The farm loop: plan, build, repair, check, test and publish every recipe, resumably.

One run:
1. load the recipes (a recipe that fails lint is reported and skipped);
2. make sure our index answers (before any build starts);
3. plan against the upstream index and ours;
4. ask the ledger about every cell: work whose inputs (recipe hash, sdist sha256, Python, target,
   toolchain versions) have not changed is not redone; a changed recipe rebuilds cells our index
   already serves, and the new wheel gets the next build tag (our index never overwrites a file);
   transient failures are retried after a backoff, deterministic ones not until something changes;
5. build the jobs in parallel (N at a time), each in its own sandboxed process (builder.farm.sandbox);
6. publish each good wheel (checker gate, collision guards) with the token, which builds never see;
7. record every step in the ledger, so a killed run is resumed by the next one.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version as dist_version
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from builder.build.pipeline import BuildResult
from builder.common.classify import classify
from builder.common.fetch import sha256_file
from builder.common.outcome import LABELS, CellState, Outcome, TestEvidence
from builder.common.paths import data_dir
from builder.common.upstream import IndexClient, UpstreamError
from builder.farm.client import FarmClient, FarmClientError
from builder.farm.ledger import Action, Inputs, Ledger
from builder.farm.sandbox import sandboxed, scrubbed_env
from builder.farm.worker import STEP_PREFIX
from builder.plan.planner import BUILD, OURS, SKIP, Decision, Job, load_recipes, plan
from builder.publish import PRESENT, UPLOADED, Destination, publish
from builder.recipes.recipe import Recipe

Progress = Callable[[str], None]
NOT_PUBLISHED = "not published: "  # a good wheel the index refused or could not take
KEPT = "kept, not published: "  # the recipe does not publish wheels that could not be run
STATUS_INTERVAL = 5.0  # seconds between two pushes of the status during a run
DEFAULT_TIMEOUT = 3 * 3600.0  # one job; a hung build is killed and recorded as a timeout


class NightlyError(RuntimeError):
    """The run cannot start (unreachable index, no recipes, bad ledger)."""


@dataclass(frozen=True)
class NightlyConfig:
    recipes: Sequence[Path] = (Path("recipes"),)
    index_url: str = "http://127.0.0.1:8080/"  # our index (base URL)
    token: str | None = None  # upload token; only the publish step sees it
    upstream: str | None = None  # None: PyPI
    ledger: str | None = None  # None: data_dir()/ledger.sqlite3
    jobs: int = os.cpu_count() or 1
    pythons: Sequence[str] = ()
    targets: Sequence[str] = ()
    work_dir: Path = field(default_factory=data_dir)  # wheelhouse/ and logs/ live here
    protect: Sequence[Path] = ()  # read-only for builds (the index storage, the ledger)
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Cell:
    """The outcome of one (project, version, python, target) in this run."""

    project: str
    version: str
    python: str
    target: str
    status: str  # an Outcome or a CellState (builder.common.outcome)
    reason: str = ""
    wheel: str | None = None
    log: str | None = None
    failure_class: str | None = None
    key_line: str | None = None
    duration: float = 0.0
    published: bool = False  # its wheel is on our index; `status` still says how it was proven

    @property
    def label(self) -> str:
        return LABELS[self.status] + (", published" if self.published else "")

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class JobEvent:
    """What a live display needs about one job: queued, started, a step (or a warning), finished."""

    kind: str  # "queued" | "start" | "step" | "warning" | "finish"
    project: str
    version: str
    python: str
    target: str
    text: str = ""  # the step, the warning, or the finished job's status
    duration: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.project, self.version, self.python, self.target)


Events = Callable[[JobEvent], None]


@dataclass(frozen=True)
class NightlyReport:
    run_id: str
    cells: tuple[Cell, ...]
    errors: tuple[str, ...]  # recipes that failed lint, projects the upstream could not answer
    duration: float
    # Found during the run: a glibc floor raised by a library, a test that cannot run for a Python,
    # a fallback backend taken, the index's farm pages not updated (builds stand).
    warnings: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        """No bad recipe, no failed build, and every good wheel reached the index."""
        return not self.errors and not any(
            c.status == Outcome.FAILED or c.reason.startswith(NOT_PUBLISHED) for c in self.cells
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "counts": self.counts(),
            "cells": [c.to_dict() for c in self.cells],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "duration": round(self.duration, 2),
        }


def toolchain_versions(recipe: Recipe) -> dict[str, str]:
    """The tool versions that are part of a build's inputs (a new zig rebuilds everything)."""
    return {
        "wheelfarm": dist_version("wheelfarm"),
        "auditwheel": dist_version("auditwheel"),
        "zig": _zig_version(),
        "backend": recipe.build.backend,
    }


@functools.cache
def _zig_version() -> str:
    """Asked once per process: it runs zig."""
    from builder.build.toolchain.host import zig_version

    return zig_version()


def run_nightly(
    cfg: NightlyConfig, progress: Progress | None = None, events: Events | None = None
) -> NightlyReport:
    """One run. `progress` gets the run's own steps (planning, setup); `events` each job's."""
    say = progress or (lambda _msg: None)
    start = time.monotonic()
    recipes, lint_errors = load_recipes(cfg.recipes)
    if not recipes and not lint_errors:
        raise NightlyError("no recipes in " + ", ".join(map(str, cfg.recipes)))
    dest = Destination.for_index(cfg.index_url, cfg.token)
    own = IndexClient(dest.authenticated_simple_url, cache=False)
    try:
        own.get(dest.authenticated_simple_url, "text/html")
    except UpstreamError as exc:
        raise NightlyError(f"our index does not answer: {exc}") from exc
    wheelhouse, logs = cfg.work_dir / "wheelhouse", cfg.work_dir / "logs"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    probe = Ledger.open(cfg.ledger)
    resume = probe.last_unfinished_run()
    probe.close()
    ledger = Ledger.open(cfg.ledger, run_id=resume) if resume else Ledger.open(cfg.ledger)
    if resume:
        say(f"resuming run {resume}")
    farm_pages = FarmClient(cfg.index_url, dest.token)
    started = datetime.now(UTC)
    with IndexClient(cfg.upstream) as upstream, own, ledger, farm_pages:
        say(f"planning {len(recipes)} recipes")
        planned = plan(
            recipes,
            upstream,
            own,
            pythons=cfg.pythons or None,
            targets=cfg.targets or None,
            errors=lint_errors,
        )
        by_name = {r.canonical_name: r for r in recipes}
        farm = _Farm(cfg, dest, upstream, own, ledger, wheelhouse, logs, say, farm_pages, events)
        cells, todo = farm.triage(planned.decisions, by_name)
        # Recipes without native libraries first: they take seconds, so the first wheels reach the
        # index early, while one with libraries waits on building them (once per target, locked).
        todo.sort(key=lambda t: len(t.recipe.native) > 0)
        say(f"{len(todo)} job(s) to build, {len(cells)} cell(s) need nothing")
        for t in todo:
            farm.emit("queued", t.job)
        # /status fills up while the run goes on: the plan now, each finished job as it comes.
        farm.live = _LiveStatus(ledger.run_id, recipes, planned.errors, started, start, cells, todo)
        farm.show_progress(force=True)
        if todo:
            # Host packages are installed here, outside the builds' sandbox (where apt cannot).
            from builder.build.toolchain.host import ensure_cross_strip, ensure_qemu

            ensure_cross_strip(progress=say)
            ensure_qemu(progress=say)
        with ThreadPoolExecutor(max_workers=max(1, cfg.jobs)) as pool:
            cells += list(pool.map(farm.run_job, todo))
        order = {Outcome.FAILED: 0}
        cells.sort(key=lambda c: (order.get(c.status, 1), c.project, c.version, c.python, c.target))
        report = NightlyReport(
            run_id=ledger.run_id,
            cells=tuple(cells),
            errors=tuple(str(e) for e in planned.errors),
            duration=time.monotonic() - start,
        )
        farm.push(lambda: farm_pages.put_status(status_document(report, recipes, started)))
    return replace(report, warnings=tuple(farm.warnings))


def status_document(
    report: NightlyReport, recipes: Sequence[Recipe], started: datetime, finished: bool = True
) -> dict[str, object]:
    """The farm's state for the index's /status and project pages (farm_status.schema.json);
    `finished=False` while the run is going on (its cells to build are "running")."""
    now = datetime.now(UTC)
    return {
        "generated": now.isoformat(),
        "run": {
            "id": report.run_id,
            "started": started.isoformat(),
            "finished": now.isoformat() if finished else None,
            "duration": round(report.duration, 2),
            "counts": report.counts(),
        },
        "recipes": {
            r.canonical_name: {
                "recipe_path": str(r.path),
                "recipe_text": r.path.read_text(errors="replace"),
                "recipe_hash": r.content_hash,
            }
            for r in recipes
        },
        "cells": [
            {
                "project": canonicalize_name(c.project),
                "version": c.version,
                "python": c.python,
                "target": c.target,
                "status": c.status,
                "reason": c.reason[:2000],
                "failure_class": c.failure_class,
                "key_line": (c.key_line or "")[:4000] or None,
                "log": Path(c.log).name if c.log else None,
                "wheel": c.wheel,
                "published": c.published,
                "duration": round(c.duration, 2),
                "when": now.isoformat(),
            }
            for c in report.cells
            if c.version  # "no release matches" cells have no version to show
        ],
    }


class _LiveStatus:
    """What /status shows during the run: every cell, the ones still to build as "running"."""

    def __init__(
        self,
        run_id: str,
        recipes: Sequence[Recipe],
        errors: Sequence[object],
        started: datetime,
        start: float,
        cells: Sequence[Cell],
        todo: Sequence[_Todo],
    ) -> None:
        self.run_id, self.recipes, self.errors = run_id, recipes, errors
        self.started, self.start = started, start
        self.cells = {_key(c): c for c in cells}
        for t in todo:
            j = t.job
            self.cells[_key(j)] = Cell(
                j.project, j.version, j.python, j.target, Outcome.RUNNING, "queued"
            )

    def document(self) -> dict[str, object]:
        report = NightlyReport(
            run_id=self.run_id,
            cells=tuple(self.cells.values()),
            errors=tuple(str(e) for e in self.errors),
            duration=time.monotonic() - self.start,
        )
        return status_document(report, self.recipes, self.started, finished=False)


def _key(c: Cell | Job) -> tuple[str, str, str, str]:
    return (c.project, c.version, c.python, c.target)


@dataclass
class _Todo:
    job: Job
    recipe: Recipe
    inputs: Inputs
    build_tag: str | None  # set when a changed recipe rebuilds a wheel our index already serves
    reason: str


class _Farm:
    """The per-run state the steps share."""

    def __init__(
        self,
        cfg: NightlyConfig,
        dest: Destination,
        upstream: IndexClient,
        own: IndexClient,
        ledger: Ledger,
        wheelhouse: Path,
        logs: Path,
        say: Progress,
        pages: FarmClient,
        events: Events | None = None,
    ) -> None:
        self.cfg, self.dest, self.upstream, self.own = cfg, dest, upstream, own
        self.ledger, self.wheelhouse, self.logs, self.say = ledger, wheelhouse, logs, say
        self.pages = pages
        self.events = events or (lambda _event: None)
        self.warnings: list[str] = []
        self._publish_lock = threading.Lock()
        self._warn_lock = threading.Lock()
        self.live: _LiveStatus | None = None
        self._status_lock = threading.Lock()
        self._last_status = 0.0

    def show_progress(self, done: Cell | None = None, force: bool = False) -> None:
        """Record a finished cell and push the run's status so far (at most every few seconds)."""
        if self.live is None:
            return
        with self._status_lock:
            if done is not None:
                self.live.cells[_key(done)] = done
            now = time.monotonic()
            if not force and now - self._last_status < STATUS_INTERVAL:
                return
            self._last_status = now
            doc = self.live.document()
        self.push(lambda: self.pages.put_status(doc))

    def emit(self, kind: str, job: Job, text: str = "", duration: float = 0.0) -> None:
        self.events(
            JobEvent(kind, job.project, job.version, job.python, job.target, text, duration)
        )

    def warn(self, message: str, job: Job | None = None) -> None:
        """A warning is shown when it is found (an event) and kept for the run's summary."""
        if job is not None:
            message = f"{job.project} {job.version} cp{job.python} {job.target}: {message}"
        with self._warn_lock:
            if message in self.warnings:
                return
            self.warnings.append(message)
        if job is not None:
            self.emit("warning", job, message)
        else:
            self.say(f"warning: {message}")

    def push(self, put: Callable[[], object]) -> None:
        """Update the index's farm pages; a failure is a warning, never a lost build."""
        try:
            put()
        except FarmClientError as exc:
            self.warn(str(exc))

    # -- deciding --------------------------------------------------------------------------------

    def triage(
        self, decisions: Sequence[Decision], recipes: dict[str, Recipe]
    ) -> tuple[list[Cell], list[_Todo]]:
        cells: list[Cell] = []
        todo: list[_Todo] = []
        for d in decisions:
            cell = Cell(d.project, d.version, d.python, d.target, d.status, d.reason, d.file)
            recipe = recipes.get(canonicalize_name(d.project))
            if d.status == OURS and recipe is not None and d.file:
                rebuild = self._changed_since_published(d, recipe)
                if rebuild is not None:
                    todo.append(rebuild)
                    continue
            if d.status != BUILD or d.job is None or recipe is None:
                cells.append(replace(cell, status=CellState.SKIPPED) if d.status == SKIP else cell)
                continue
            inputs = Inputs.for_job(d.job, recipe.content_hash, toolchain_versions(recipe))
            decision = self.ledger.decide(d.job, inputs)
            if decision.action is Action.SKIP:
                prev = decision.previous
                if decision.reason == "done" and prev is not None:
                    # Built before but never published (the index was down, or the run was killed
                    # between build and publish): publish the kept wheel instead of rebuilding it.
                    kept = [self.wheelhouse / w.filename for w in prev.wheels]
                    proven = replace(cell, status=prev.outcome)
                    untested = prev.outcome is Outcome.CHECKED_NOT_RUN
                    if untested and not recipe.test.publish_untested:
                        why = f"{KEPT}checked, not run (publish-untested = false)"
                        cells.append(replace(proven, reason=why, log=prev.log_path))
                        continue
                    if kept and all(p.exists() for p in kept):
                        built_at = prev.finished_at or prev.started_at
                        evidence = TestEvidence(
                            prev.outcome, reason=f"recorded by attempt {prev.id} of the ledger"
                        )
                        cells.append(
                            self._publish(
                                prev.id,
                                kept,
                                proven,
                                prev.log_path,
                                d.job,
                                inputs,
                                built_at,
                                evidence,
                            )
                        )
                        continue
                    todo.append(_Todo(d.job, recipe, inputs, None, "wheel lost, rebuilding"))
                    continue
                status = Outcome.FAILED if decision.reason == "failed" else CellState.SKIPPED
                why = {
                    "failed": "failed before with the same inputs (not retried until they change)",
                    "backoff": "transient failure; retried after "
                    + datetime.fromtimestamp(decision.not_before or 0, UTC).isoformat(),
                }.get(decision.reason, decision.reason)
                cells.append(
                    replace(
                        cell,
                        status=status,
                        reason=why,
                        log=prev.log_path if prev else None,
                        failure_class=prev.failure_class if prev else None,
                        key_line=prev.key_line if prev else None,
                    )
                )
                continue
            todo.append(_Todo(d.job, recipe, inputs, None, f"{d.reason} ({decision.reason})"))
        return cells, todo

    def _changed_since_published(self, d: Decision, recipe: Recipe) -> _Todo | None:
        """A rebuild job when our wheel for this cell was built from another recipe version."""
        published = [
            a
            for a in self.ledger.attempts_for(_CellKey(d.project, d.version, d.python, d.target))
            if a.outcome is Outcome.PUBLISHED
        ]
        if not published:
            return None  # not built by this farm's ledger (uploaded by hand): leave it
        last = published[-1]
        if last.inputs.recipe_hash == recipe.content_hash or last.job is None:
            return None
        job = Job.from_dict(last.job)
        inputs = Inputs.for_job(job, recipe.content_hash, toolchain_versions(recipe))
        decision = self.ledger.decide(job, inputs)
        if decision.action is Action.SKIP and decision.reason != "done":
            return None  # the changed recipe already failed (or is backing off)
        kept = (
            decision.previous is not None and decision.previous.outcome is Outcome.CHECKED_NOT_RUN
        )
        if decision.action is Action.SKIP and kept and not recipe.test.publish_untested:
            return None  # built with these inputs and kept off the index on purpose
        build_number = 1 + max(
            (_build_number(f.filename) for f in self._own_files(d.project, d.version)), default=0
        )
        return _Todo(job, recipe, inputs, str(build_number), "recipe changed since the last build")

    def _own_files(self, project: str, version: str) -> list:
        try:
            page = self.own.project(project)
        except UpstreamError:
            return []
        return [f for f in page.files if f.is_wheel and str(f.version) == version]

    # -- building --------------------------------------------------------------------------------

    def run_job(self, todo: _Todo) -> Cell:
        job = todo.job
        cell = Cell(job.project, job.version, job.python, job.target, Outcome.FAILED, todo.reason)
        attempt = self.ledger.start_attempt(job, todo.inputs)
        self.emit("start", job, "starting")
        cell = self._run_job(todo, cell, attempt)
        self.emit("finish", job, cell.label, cell.duration)
        self.show_progress(cell)
        return cell

    def _run_job(self, todo: _Todo, cell: Cell, attempt: int) -> Cell:
        job = todo.job
        result, raw_log = self._build_in_sandbox(job)
        for warning in result.warnings:
            self.warn(warning, job)
        self.push(lambda: self.pages.put_log(job.project, result.log.name, result.log))
        if result.status is Outcome.FAILED:
            failure = classify(raw_log, returncode=None)
            key_line = result.error or failure.key_line
            self.ledger.finish_attempt(
                attempt,
                Outcome.FAILED,
                failure=failure,
                key_line=key_line,
                log_path=result.log,
                duration=result.duration,
            )
            return replace(
                cell,
                reason=f"{result.step}: {result.message or result.error}",
                log=str(result.log),
                failure_class=failure.cls,
                key_line=key_line,
                duration=result.duration,
            )
        assert result.wheel is not None
        wheel = result.wheel
        if todo.build_tag:
            wheel = retag(wheel, todo.build_tag)
        outcome = result.status
        # why a wheel is "checked, not run" (e.g. "no macOS to run on") is kept with it
        why = result.message if outcome is Outcome.CHECKED_NOT_RUN else None
        self.ledger.finish_attempt(
            attempt,
            outcome,
            log_path=result.log,
            wheels=[(wheel.name, sha256_file(wheel))],
            duration=result.duration,
            key_line=why,
        )
        done = replace(
            cell,
            status=outcome,
            duration=result.duration,
            log=str(result.log),
            reason=why or cell.reason,
        )
        if outcome is Outcome.CHECKED_NOT_RUN and not todo.recipe.test.publish_untested:
            return replace(done, reason=f"{KEPT}{result.message} (publish-untested = false)")
        evidence = result.test or TestEvidence(outcome)
        return self._publish(
            attempt, [wheel], done, str(result.log), job, todo.inputs, time.time(), evidence
        )

    def _build_in_sandbox(self, job: Job) -> tuple[BuildResult, str]:
        """Run one job in a sandboxed worker process; a crash or timeout is a failed result."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(job.to_dict(), fh)
        command = [
            sys.executable,
            "-m",
            "builder.farm.worker",
            fh.name,
            str(self.wheelhouse),
            str(self.logs),
        ]
        started = time.monotonic()
        try:
            out, err, code = self._run_worker(sandboxed(command, self.cfg.protect), job)
        finally:
            os.unlink(fh.name)
        last = out.strip().rsplit("\n", 1)[-1] if out.strip() else ""
        try:
            data = json.loads(last)
            result = BuildResult.from_dict(data)
        except (ValueError, KeyError, TypeError):
            log = self.logs / canonicalize_name(job.project) / f"worker-{int(time.time())}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(out + "\n" + err)
            failure = classify(out + "\n" + err, returncode=code)
            result = BuildResult(
                project=job.project,
                version=job.version,
                python=job.python,
                target=job.target,
                backend="",
                status=Outcome.FAILED,
                wheel=None,
                log=log,
                step="worker",
                error=failure.key_line or f"the build process exited with {code}",
                duration=time.monotonic() - started,
            )
            return result, out + "\n" + err
        return result, _read(result.log)

    def _run_worker(self, command: list[str], job: Job) -> tuple[str, str, int | None]:
        """Run the worker; its progress lines on stderr become step events as they come."""
        proc = subprocess.Popen(
            command,
            env=scrubbed_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None and proc.stderr is not None
        out: list[str] = []
        err: list[str] = []

        def read_err(stream) -> None:
            for line in stream:
                if line.startswith(STEP_PREFIX):
                    step = line[len(STEP_PREFIX) :].strip()
                    if step.startswith("warning: "):
                        self.warn(step.removeprefix("warning: "), job)
                    else:
                        self.emit("step", job, step)
                else:
                    err.append(line)

        readers = [
            threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True),
            threading.Thread(target=read_err, args=(proc.stderr,), daemon=True),
        ]
        for t in readers:
            t.start()
        try:
            code: int | None = proc.wait(timeout=self.cfg.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
            err.append(f"\nwheelfarm: the build timed out after {self.cfg.timeout:.0f} seconds")
        for t in readers:
            t.join(timeout=10)  # a grandchild holding the pipes open must not hang the run
        return "".join(out), "".join(err), code

    # -- publishing ------------------------------------------------------------------------------

    def _publish(
        self,
        attempt: int,
        wheels: list[Path],
        cell: Cell,
        log: str | None,
        job: Job,
        inputs: Inputs,
        built_at: float,
        evidence: TestEvidence,
    ) -> Cell:
        # twine's own output goes to the publish log, never between our progress lines.
        with self._publish_lock, (self.logs / "publish.log").open("a") as twine_log:
            results = publish(wheels, self.dest, upstream=self.upstream, output=twine_log)
        refused = [r for r in results if not r.ok]
        if refused:
            return replace(cell, reason=NOT_PUBLISHED + refused[0].reason, log=log)
        if not all(r.status in (UPLOADED, PRESENT) for r in results):
            # The upstream index has the same bytes: nothing for us to serve.
            return replace(cell, reason=results[0].reason, wheel=wheels[0].name, log=log)
        self.ledger.mark_published(attempt)
        for r in results:
            record = {
                "sdist_url": job.sdist_url,
                "sdist_sha256": job.sdist_sha256,
                "recipe_hash": inputs.recipe_hash,
                "recipe_path": job.recipe_path,
                "toolchain": dict(inputs.toolchain),
                "builder_host": socket.gethostname(),
                "build_time": datetime.fromtimestamp(built_at, UTC).isoformat(),
                "python": job.python,
                "target": job.target,
                "checker": r.checker or {"ok": False, "findings": []},
                "test": evidence.to_dict(),
            }
            self.push(lambda r=r, record=record: self.pages.put_provenance(r.wheel.name, record))
        return replace(cell, published=True, wheel=wheels[0].name, log=log)


@dataclass(frozen=True)
class _CellKey:
    project: str
    version: str
    python: str
    target: str
    sdist_sha256: str = ""


def retag(wheel: Path, build_tag: str) -> Path:
    """Give `wheel` a build tag (file name, WHEEL's Build line and RECORD), replacing the file."""
    proc = subprocess.run(
        [sys.executable, "-m", "wheel", "tags", "--build", build_tag, "--remove", str(wheel)],
        capture_output=True,
        text=True,
        check=True,
    )
    return wheel.with_name(proc.stdout.strip().splitlines()[-1])


def _build_number(filename: str) -> int:
    build = parse_wheel_filename(filename)[2]
    return build[0] if build else 0


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
