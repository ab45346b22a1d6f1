"""A build log made readable: what happened first, then the steps, with the noise folded away.

A wheelfarm build log (builder.common.buildlog.BuildLog) is a series of sections, each headed
`==== [  12.3s] <step>: <command>`, a command's changed environment variables right under it, then
its output. The log page shows, in this order: the outcome, the failing step and the key error lines;
then one collapsible section per step (open: the one holding the key line, the failing step and the
result), in which the environment dump and known noise (setuptools/pip deprecation banners, the
copying/creating chatter of setuptools) are folded into their own closed blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from builder.common.buildlog import error_lines

_SECTION = re.compile(r"^==== \[\s*(?P<elapsed>[\d.]+)s\] (?P<title>.*)$")
_ENV = re.compile(r"^  (?:[A-Za-z_][A-Za-z0-9_]*=|cwd=)")
_RESULT = re.compile(
    r"^result: (?:failed at (?P<step>[\w-]+): (?P<why>.*)|(?P<status>[\w-]+): .*)$"
)
# Lines that never explain an outcome. A "!!" banner (setuptools' deprecation notices) is folded
# whole, from its opening "!!" line to its closing one.
_NOISE = re.compile(
    r"(DeprecationWarning|SetuptoolsDeprecationWarning|PEP 517|easy_install|"
    r"^\s*(copying|creating|adding|removing|running|writing|reading|installing) |"
    r"^\s*\*{8,}\s*$|Using cached |Requirement already satisfied|Successfully installed|"
    r"Running command |Created temporary directory|Building wheel for .* started|"
    r"ignoring installed|Skipping link|Source in |Processing )"
)
_BANNER = re.compile(r"^\s*!!\s*$")


@dataclass
class Chunk:
    kind: str  # "text" | "env" | "noise"
    lines: list[str] = field(default_factory=list)
    key: int | None = None  # index in `lines` of the key line, if it is here

    @property
    def summary(self) -> str:
        n = len(self.lines)
        if self.kind == "env":
            return f"environment and folder ({n} line{'s' * (n != 1)})"
        return f"{n} line{'s' * (n != 1)} of noise (deprecation notices, file copying, pip chatter)"


@dataclass
class Section:
    title: str
    elapsed: float | None
    chunks: list[Chunk] = field(default_factory=list)
    open: bool = False

    @property
    def step(self) -> str:
        return self.title.split(":", 1)[0]

    @property
    def has_key(self) -> bool:
        return any(c.key is not None for c in self.chunks)

    @property
    def size(self) -> int:
        return sum(len(c.lines) for c in self.chunks)


@dataclass
class LogView:
    sections: list[Section]
    outcome: str | None  # "failed", "tested", ... from the log's "result:" line
    failed_step: str | None
    errors: list[str]  # the key error lines, the key line first


def view(text: str, key_line: str | None = None) -> LogView:
    """Split `text` into sections and chunks; mark the key line; decide what is open."""
    wanted = (key_line or "").strip()
    sections = [Section("start", None)]
    outcome = failed_step = None
    in_banner = False
    for line in text.splitlines():
        if m := _SECTION.match(line):
            sections.append(Section(m["title"], float(m["elapsed"])))
            in_banner = False
            if r := _RESULT.match(m["title"]):
                outcome = "failed" if r["step"] else r["status"]
                failed_step = r["step"]
            continue
        section = sections[-1]
        if _BANNER.match(line):
            in_banner = not in_banner
            kind = "noise"
        elif in_banner or _NOISE.search(line):
            kind = "noise"
        elif _ENV.match(line) and (not section.chunks or section.chunks[-1].kind == "env"):
            kind = "env"  # only right under the heading: later KEY=value lines are output
        else:
            kind = "text"
        if wanted and (line.strip() == wanted or wanted in line):
            kind = "text"  # the key line is never folded away
        if not section.chunks or section.chunks[-1].kind != kind:
            section.chunks.append(Chunk(kind))
        chunk = section.chunks[-1]
        is_key = bool(wanted) and (line.strip() == wanted or wanted in line)
        if is_key and chunk.key is None and not any(s.has_key for s in sections):
            chunk.key = len(chunk.lines)
        chunk.lines.append(line)
    sections = [s for s in sections if s.chunks or s.title != "start"]
    _merge_small_noise(sections)
    for s in sections:
        s.open = (
            s.has_key
            or s.title.startswith("result:")
            or (
                failed_step is not None
                and s.step == failed_step
                and s is _last_of(sections, s.step)
            )
        )
    if not any(s.open for s in sections) and sections:
        sections[-1].open = True  # an unfinished log: its end is where to look
    found = error_lines(text, limit=6)
    errors = ([wanted] if wanted else []) + [e for e in found if e != wanted]
    return LogView(sections, outcome, failed_step, errors[:6])


def _last_of(sections: list[Section], step: str) -> Section | None:
    same = [s for s in sections if s.step == step]
    return same[-1] if same else None


def _merge_small_noise(sections: list[Section]) -> None:
    """A single noise line between text is not worth a fold: show it as text."""
    for s in sections:
        merged: list[Chunk] = []
        for c in s.chunks:
            if c.kind == "noise" and len(c.lines) < 3 and c.key is None:
                c = Chunk("text", c.lines)
            if merged and merged[-1].kind == c.kind == "text":
                prev = merged[-1]
                if c.key is not None:
                    prev.key = len(prev.lines) + c.key
                prev.lines.extend(c.lines)
            else:
                merged.append(c)
        s.chunks = merged
