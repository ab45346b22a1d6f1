"""Publishing wheels to wheelfarm's index with twine, behind the checker and two collision guards.

For each wheel, in order:
1. the wheel checker must pass (`builder.check.check_wheel`): a rejected wheel is never uploaded;
2. the wheel must not shadow a public project: when the upstream index has the project, it must
   have this version too (the index's own upload rule, builder.common.upstream.shadowing_refusal);
   the upstream index must not already hold a file of the same name: with the same bytes, ours is not
   needed; with other bytes, publishing ours would give one filename two hashes across the two indexes
   that users combine with --extra-index-url, which breaks hash-pinned lock files. wheelfarm refuses
   (it does not re-tag with a build number, because a build tag would make pip prefer our copy over
   the upstream's own wheel);
3. our index must not hold the same name with other bytes (refused, never overwritten); the same bytes
   are skipped without an upload;
4. twine uploads it (its library API, one file at a time so that each gets its own outcome).

The token comes from the caller, $WHEELFARM_INDEX_TOKEN, or ~/.pypirc (`--repository NAME`); it is
used only here, never passed to a build.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from packaging.utils import parse_wheel_filename

from builder.common.farmconfig import index_base_url
from builder.common.fetch import sha256_file
from builder.common.upstream import (
    IndexClient,
    ProjectNotFound,
    UpstreamError,
    project_or_none,
    shadowing_refusal,
)

TOKEN_ENV = "WHEELFARM_INDEX_TOKEN"

UPLOADED = "uploaded"
PRESENT = "already-present"  # our index has these exact bytes
UPSTREAM_HAS_IT = "upstream-has-it"  # the upstream index has these exact bytes
REFUSED = "refused"


class PublishError(RuntimeError):
    """Publishing cannot start (no token, index unreachable)."""


@dataclass(frozen=True)
class PublishResult:
    wheel: Path
    status: str  # UPLOADED, PRESENT, UPSTREAM_HAS_IT or REFUSED
    reason: str = ""
    checker: dict[str, object] | None = None  # {"ok", "findings"} when the checker ran

    @property
    def ok(self) -> bool:
        return self.status != REFUSED

    def to_dict(self) -> dict[str, object]:
        return {"wheel": str(self.wheel), "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class Destination:
    """Where to publish: the index's simple URL (for reads) and its legacy upload URL."""

    simple_url: str
    upload_url: str
    token: str

    @classmethod
    def for_index(cls, index_url: str, token: str | None = None) -> Destination:
        """From the index's base URL (`https://wheels.example.com/`) or its /simple/ or /legacy/ URL."""
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise PublishError(f"no upload token: pass --token or set ${TOKEN_ENV}")
        base = index_base_url(index_url)
        return cls(f"{base}/simple/", f"{base}/legacy/", token)

    @classmethod
    def from_pypirc(cls, repository: str, config_file: str = "~/.pypirc") -> Destination:
        """A `[repository]` section of ~/.pypirc (repository = ..., password = the token)."""
        from twine.utils import get_config

        try:
            section = get_config(config_file)[repository]
        except KeyError:
            raise PublishError(f"{config_file}: no [{repository}] section") from None
        if not section.get("repository") or not section.get("password"):
            raise PublishError(f"{config_file} [{repository}]: needs repository and password")
        return cls.for_index(section["repository"], section["password"])

    @property
    def authenticated_simple_url(self) -> str:
        """The simple URL with the token as credentials (works for private indexes too)."""
        parts = urlsplit(self.simple_url)
        return urlunsplit(parts._replace(netloc=f"__token__:{self.token}@{parts.netloc}"))


def publish(
    wheels: Sequence[Path],
    dest: Destination,
    *,
    upstream: IndexClient | None = None,
    check: bool = True,
    output: TextIO | None = None,
) -> list[PublishResult]:
    """Publish `wheels` to `dest`; one result per wheel, in order. A refusal never stops the others.

    twine's own output goes to `output` (the nightly's publish log), else to stderr: never stdout,
    which belongs to our --json output."""
    from twine.commands.upload import upload
    from twine.exceptions import TwineException
    from twine.settings import Settings

    settings = Settings(
        repository_url=dest.upload_url,
        username="__token__",
        password=dest.token,
        non_interactive=True,
        skip_existing=False,  # we decide what exists (below), so a 409 is a real conflict
        disable_progress_bar=True,
    )
    results: list[PublishResult] = []
    with IndexClient(dest.authenticated_simple_url, cache=False) as ours:
        for wheel in wheels:
            reason, checked = _refusal(wheel, check)
            if reason:
                results.append(PublishResult(wheel, REFUSED, reason, checked))
                continue
            digest = sha256_file(wheel)
            if upstream is not None and (why := _shadowing(upstream, wheel.name)):
                results.append(PublishResult(wheel, REFUSED, why, checked))
                continue
            if upstream is not None:
                there = _existing(upstream, wheel.name)
                if there is not None:
                    status = UPSTREAM_HAS_IT if there == digest else REFUSED
                    why = (
                        f"{upstream.index_url} already has these bytes"
                        if status == UPSTREAM_HAS_IT
                        else f"{upstream.index_url} has {wheel.name} with other bytes "
                        f"(sha256 {there}); one filename with two hashes breaks hash-pinned installs"
                    )
                    results.append(PublishResult(wheel, status, why, checked))
                    continue
            mine = _existing(ours, wheel.name)
            if mine == digest:
                results.append(PublishResult(wheel, PRESENT, "our index has these bytes", checked))
                continue
            if mine is not None:
                why = f"our index has {wheel.name} with other bytes (sha256 {mine}); never overwritten"
                results.append(PublishResult(wheel, REFUSED, why, checked))
                continue
            try:
                with _twine_output(output or sys.stderr):
                    upload(settings, [str(wheel)])
            except (TwineException, OSError) as exc:  # requests' HTTPError is an OSError
                results.append(PublishResult(wheel, REFUSED, f"upload failed: {exc}", checked))
                continue
            results.append(PublishResult(wheel, UPLOADED, "", checked))
    return results


@contextlib.contextmanager
def _twine_output(to: TextIO) -> Iterator[None]:
    """Send what twine prints (through rich's global console, and its logger) to `to`, unwrapped."""
    import rich

    console = rich.get_console()
    saved = dict(console.__dict__)
    # A log file is no terminal: without a width rich would wrap file names at 80 columns.
    rich.reconfigure(file=to, width=400, no_color=not to.isatty())
    try:
        with contextlib.redirect_stdout(to), contextlib.redirect_stderr(to):
            yield
    finally:
        console.__dict__.clear()
        console.__dict__.update(saved)


def _refusal(wheel: Path, check: bool) -> tuple[str | None, dict[str, object] | None]:
    """Why `wheel` must not be published (or None), and the checker's verdict when it ran."""
    try:
        parse_wheel_filename(wheel.name)
    except ValueError as exc:
        return f"not a wheel file name: {exc}", None
    if not check:
        return None, None
    from builder.check import WheelReadError, check_wheel

    try:
        report = check_wheel(wheel)
    except WheelReadError as exc:
        return f"unreadable: {exc}", None
    verdict = {"ok": report.ok, "findings": [f.to_dict() for f in report.findings]}
    errors = [f for f in report.findings if f.severity == "error"]
    if errors:
        return "the checker rejects it: " + "; ".join(
            f"{f.rule} {f.path}: {f.message}" for f in errors[:3]
        ), verdict
    return None, verdict


def _shadowing(upstream: IndexClient, filename: str) -> str | None:
    """The index's public-name shadowing rule, applied before uploading (builder.common.upstream)."""
    name, version, _build, _tags = parse_wheel_filename(filename)
    try:
        page = project_or_none(upstream, name)
    except UpstreamError as exc:
        raise PublishError(f"cannot read {exc}") from exc
    return shadowing_refusal(page, version, upstream.index_url)


def _existing(client: IndexClient, filename: str) -> str | None:
    """The sha256 of `filename` on the client's index ('' if listed without one), or None."""
    name = parse_wheel_filename(filename)[0]
    try:
        page = client.project(name)
    except ProjectNotFound:
        return None
    except UpstreamError as exc:
        raise PublishError(f"cannot read {exc}") from exc
    for file in page.files:
        if file.filename == filename:
            return file.sha256 or ""
    return None


def summarize(results: Iterable[PublishResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts
