"""Recipes: one TOML file per project, validated against one JSON Schema, loaded into frozen dataclasses.

`recipe.schema.json` (shipped with the package) is the single source of truth for the shape; this module
adds what a schema cannot say (PEP 440 specifiers, platform tags, Python versions, cibuildwheel selectors,
PEP 508 requirements, the file name) and reports *every* problem of a file, each naming the file, the key
(as a path such as `project.targets[1]`) and what is wrong.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shlex
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from builder.common.targets import TargetError, parse_python, parse_target
from builder.recipes import selectors

SCHEMA_RESOURCE = "recipe.schema.json"
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe: the file, the key (a path like `native[0].sha256`), a message."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.key}: {self.message}"
            if self.key
            else f"{self.file}: {self.message}"
        )

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "key": self.key, "message": self.message}


class RecipeError(Exception):
    """A recipe that cannot be used; `problems` lists everything wrong with it, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class BuildOptions:
    """[build]: how to build; names and meanings follow cibuildwheel where they overlap."""

    backend: str = "cross"
    fallback: tuple[str, ...] = ()
    build: tuple[str, ...] = ()  # selector patterns; empty means every identifier ("*")
    skip: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    before_all: str = ""  # a cibuildwheel list is joined with " && "
    before_build: str = ""
    config_settings: Mapping[str, str | tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    build_requires: tuple[str, ...] = ()

    def selects(self, identifier: str) -> bool:
        """cibuildwheel's rule for an identifier such as `cp311-manylinux_aarch64`."""
        return selectors.selected(self.build, self.skip, identifier)


@dataclass(frozen=True)
class NativeLib:
    """[[native]]: a C library built for, or fetched for, the target before the wheel is built."""

    name: str
    source: str  # "debian:<source package>[@<suite>]" (default bookworm) or an http(s) URL
    # "autotools" | "cmake" | "make" | "meson" | "openssl" | "mklove" | "debian-binary"
    build_system: str
    sha256: str | None = None  # required for URL sources
    version: str | None = None
    args: tuple[str, ...] = ()

    @property
    def debian_package(self) -> str | None:
        """The Debian source package for `debian:` sources (without an `@suite`), else None."""
        if not self.source.startswith("debian:"):
            return None
        return self.source.removeprefix("debian:").partition("@")[0]


@dataclass(frozen=True)
class TestSpec:
    """[test]: what proves a built wheel works on the target."""

    __test__ = False  # not a pytest class

    imports: tuple[str, ...]
    call: str = ""
    test_requires: tuple[str, ...] = ()
    test_command: str = ""  # cibuildwheel meaning: {project} / {package} placeholders
    publish_untested: bool = True  # publish "checked, not run" wheels (marked as such)


@dataclass(frozen=True)
class Accepted:
    """One `[parity] accept` entry: a known difference from upstream and why it is acceptable."""

    kind: str  # "key" | "line" | "file" | "requirement"
    value: str
    reason: str


@dataclass(frozen=True)
class ParitySpec:
    """[parity]: how our wheel is compared with upstream's wheel of the same release."""

    probe: str = ""  # Python printing `key value` lines; empty: inventory only
    accept: tuple[Accepted, ...] = ()
    tests: bool = False  # run [test] test-command with both wheels and compare per-test outcomes


ACCEPT_KINDS = ("key", "line", "file", "requirement", "test")


@dataclass(frozen=True)
class Recipe:
    name: str  # as written in the recipe
    path: Path
    content_hash: str  # sha256 of the file's bytes: a changed recipe is a new build input
    versions: SpecifierSet
    latest: int | None  # newest N matching releases; None means all that match `versions`
    pythons: tuple[str, ...]
    targets: tuple[str, ...]
    build: BuildOptions
    native: tuple[NativeLib, ...]
    test: TestSpec
    parity: ParitySpec | None = None  # None: no [parity] table

    @property
    def canonical_name(self) -> str:
        return canonicalize_name(self.name)


@functools.cache
def schema() -> dict[str, Any]:
    """The recipe JSON Schema shipped with the package."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text())


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema())


def key_path(parts: Iterable[str | int]) -> str:
    """`["native", 0, "sha256"]` -> `native[0].sha256`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _BARE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


_TYPE_WORDS = {
    "object": "a table",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
}


def _schema_problems(file: str, data: Any) -> Iterator[Problem]:
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for err in errors:
        where = list(err.absolute_path)
        custom = err.schema.get("errorMessage") if isinstance(err.schema, dict) else None
        if err.validator == "additionalProperties":
            known = sorted(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - set(known)):
                yield Problem(
                    file, key_path([*where, extra]), f"unknown key (known: {', '.join(known)})"
                )
        elif err.validator == "required":
            missing = err.message.split("'")[1]
            why = "a URL source needs its sha256" if "then" in err.schema_path else "missing key"
            yield Problem(file, key_path([*where, missing]), why)
        elif custom:
            yield Problem(file, key_path(where), f"{custom}, not {_show(err.instance)}")
        elif err.validator == "type":
            want = err.validator_value
            words = " or ".join(
                _TYPE_WORDS.get(t, t) for t in ([want] if isinstance(want, str) else want)
            )
            yield Problem(file, key_path(where), f"must be {words}, not {_show(err.instance)}")
        elif err.validator == "enum":
            choices = ", ".join(json.dumps(c) for c in err.validator_value)
            yield Problem(
                file, key_path(where), f"must be one of {choices}, not {_show(err.instance)}"
            )
        elif err.validator in ("minItems", "minLength"):
            yield Problem(file, key_path(where), "must not be empty")
        elif err.validator == "uniqueItems":
            yield Problem(file, key_path(where), "has duplicate entries")
        elif err.validator == "minimum":
            yield Problem(file, key_path(where), f"must be at least {err.validator_value}")
        else:
            yield Problem(file, key_path(where), err.message)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pairs(text: str) -> list[tuple[str, str]]:
    """Split a cibuildwheel-style string of KEY=VALUE pairs; raise ValueError on anything else."""
    out = []
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise ValueError(f"{token!r} is not KEY=VALUE")
        out.append((key, value))
    return out


def _joined(value: str | list[str] | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else " && ".join(value)


def _words(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)


class _Checker:
    """Semantic checks beyond the schema; every problem is collected, none stops the others."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, parts: list[str | int], message: str) -> None:
        self.problems.append(Problem(self.file, key_path(parts), message))

    def requirements(self, parts: list[str | int], reqs: Iterable[tuple[int, str]]) -> None:
        for i, text in reqs:
            try:
                Requirement(text)
            except InvalidRequirement as exc:
                self.add([*parts, i], f"not a PEP 508 requirement: {str(exc).splitlines()[0]}")


def _check(path: Path, data: dict[str, Any], c: _Checker) -> None:
    project = data.get("project")
    if isinstance(project, dict):
        name = project.get("name")
        if isinstance(name, str) and name:
            if not re.match(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", name, re.IGNORECASE):
                c.add(["project", "name"], f"{name!r} is not a valid project name (PEP 508)")
            elif path.name != (want := f"{canonicalize_name(name)}.toml"):
                c.add(["project", "name"], f"project {name!r} belongs in a file named {want}")
        versions = project.get("versions")
        if isinstance(versions, str):
            try:
                SpecifierSet(versions)
            except InvalidSpecifier:
                c.add(["project", "versions"], f"{versions!r} is not a PEP 440 specifier")
        for i, py in _strings(project.get("pythons")):
            try:
                parse_python(py)
            except TargetError as exc:
                c.add(["project", "pythons", i], f"{py!r}: {exc}")
        for i, tag in _strings(project.get("targets")):
            try:
                parse_target(tag)
            except TargetError as exc:
                c.add(["project", "targets", i], f"{tag!r}: {exc}")

    build = data.get("build")
    if isinstance(build, dict):
        for key in ("build", "skip"):
            value = build.get(key)
            if isinstance(value, str | list) and all(isinstance(v, str) for v in _listify(value)):
                for pattern in selectors.split_selector(value):
                    try:
                        selectors.validate_pattern(pattern)
                    except selectors.SelectorError as exc:
                        c.add(["build", key], f"bad selector: {exc}")
        backend, fallback = build.get("backend", "cross"), build.get("fallback")
        if isinstance(fallback, list) and backend in fallback:
            c.add(["build", "fallback"], f"repeats the main backend {backend!r}")
        for key in ("environment", "config-settings"):
            value = build.get(key)
            try:
                names = (
                    [k for k, _ in _pairs(value)] if isinstance(value, str) else list(value or {})
                )
            except ValueError as exc:
                c.add(["build", key], str(exc))
                continue
            if key == "environment":
                for env in names:
                    if not _ENV_NAME.match(env):
                        c.add(["build", key, env], "not a valid environment variable name")
        if isinstance(reqs := build.get("build-requires"), list):
            c.requirements(["build", "build-requires"], _strings(reqs))

    native = data.get("native")
    if isinstance(native, list):
        seen: set[str] = set()
        for i, lib in enumerate(native):
            if isinstance(lib, dict) and isinstance(lib.get("name"), str):
                if lib["name"] in seen:
                    c.add(["native", i, "name"], f"{lib['name']!r} is listed twice")
                seen.add(lib["name"])

    test = data.get("test")
    if isinstance(test, dict):
        for i, mod in _strings(test.get("imports")):
            if not _IDENTIFIER_PATH.match(mod):
                c.add(["test", "imports", i], f"{mod!r} is not a module name")
        if isinstance(call := test.get("call"), str):
            try:
                compile(call, f"{path}:test.call", "exec")
            except SyntaxError as exc:
                c.add(["test", "call"], f"not valid Python: {exc.msg} (line {exc.lineno})")
        reqs = test.get("test-requires")
        if isinstance(reqs, str | list) and all(isinstance(v, str) for v in _listify(reqs)):
            c.requirements(["test", "test-requires"], enumerate(_words(reqs)))

    parity = data.get("parity")
    if isinstance(parity, dict):
        if isinstance(probe := parity.get("probe"), str):
            try:
                compile(probe, f"{path}:parity.probe", "exec")
            except SyntaxError as exc:
                c.add(["parity", "probe"], f"not valid Python: {exc.msg} (line {exc.lineno})")
        if parity.get("tests") is True and isinstance(test, dict) and not test.get("test-command"):
            c.add(["parity", "tests"], "needs [test] test-command: the command that runs the tests")
        for i, entry in enumerate(parity.get("accept") or ()):
            reason = entry.get("reason") if isinstance(entry, dict) else None
            if isinstance(reason, str) and not reason.strip():
                c.add(["parity", "accept", i, "reason"], "must say why (not blank)")


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _strings(value: Any) -> list[tuple[int, str]]:
    """(index, item) for the string items of a list; wrong types are the schema's to report."""
    return (
        [(i, v) for i, v in enumerate(value) if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )


def validate(path: Path, data: Any) -> list[Problem]:
    """Every problem with parsed recipe data: schema first, then what the schema cannot express."""
    file = str(path)
    problems = list(_schema_problems(file, data))
    if isinstance(data, dict):
        checker = _Checker(file)
        _check(path, data, checker)
        seen = {(p.key, p.message) for p in problems}
        problems += [p for p in checker.problems if (p.key, p.message) not in seen]
    return sorted(problems, key=lambda p: p.key)


def parse_recipe(path: Path, raw: bytes) -> Recipe:
    """Validate and load recipe bytes read from `path`; raise RecipeError listing all problems."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecipeError([Problem(str(path), "", f"not UTF-8 text: {exc.reason}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError([Problem(str(path), "", f"TOML syntax error: {exc}")]) from None
    if problems := validate(path, data):
        raise RecipeError(problems)
    return _build(path, raw, data)


def load_recipe(path: Path | str) -> Recipe:
    """Read, validate and load one recipe file; raise RecipeError naming the file, key and problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecipeError([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from None
    return parse_recipe(path, raw)


def _build(path: Path, raw: bytes, data: dict[str, Any]) -> Recipe:
    project, build, test = data["project"], data.get("build", {}), data["test"]
    env = build.get("environment", {})
    env = dict(_pairs(env)) if isinstance(env, str) else dict(env)
    cfg: dict[str, str | tuple[str, ...]] = {}
    raw_cfg = build.get("config-settings", {})
    if isinstance(raw_cfg, str):
        for key, value in _pairs(raw_cfg):
            old = cfg.get(key)
            # cibuildwheel: a repeated key becomes a list
            cfg[key] = value if old is None else (*_listify_t(old), value)
    else:
        cfg = {k: (v if isinstance(v, str) else tuple(v)) for k, v in raw_cfg.items()}
    versions = project.get("versions")
    latest = project.get("latest")
    if versions is None and latest is None:
        latest = 1  # neither given: the newest release
    return Recipe(
        name=project["name"],
        path=path,
        content_hash=hashlib.sha256(raw).hexdigest(),
        versions=SpecifierSet(versions or ""),
        latest=latest,
        pythons=tuple(project["pythons"]),
        targets=tuple(project["targets"]),
        build=BuildOptions(
            backend=build.get("backend", "cross"),
            fallback=tuple(build.get("fallback", ())),
            build=tuple(p for p in selectors.split_selector(build.get("build", "")) if p != "*"),
            skip=selectors.split_selector(build.get("skip", "")),
            environment=MappingProxyType(env),
            before_all=_joined(build.get("before-all")),
            before_build=_joined(build.get("before-build")),
            config_settings=MappingProxyType(cfg),
            build_requires=tuple(build.get("build-requires", ())),
        ),
        native=tuple(
            NativeLib(
                name=lib["name"],
                source=lib["source"],
                build_system=lib["build-system"],
                sha256=lib.get("sha256"),
                version=lib.get("version"),
                args=tuple(lib.get("args", ())),
            )
            for lib in data.get("native", ())
        ),
        test=TestSpec(
            imports=tuple(test["imports"]),
            call=test.get("call", ""),
            test_requires=_words(test.get("test-requires")),
            test_command=_joined(test.get("test-command")),
            publish_untested=test.get("publish-untested", True),
        ),
        parity=_parity(data["parity"]) if "parity" in data else None,
    )


def _parity(table: dict[str, Any]) -> ParitySpec:
    accepted = []
    for entry in table.get("accept", ()):
        kind = next(k for k in ACCEPT_KINDS if k in entry)  # the schema allows exactly one
        accepted.append(Accepted(kind, entry[kind], entry["reason"]))
    return ParitySpec(
        probe=table.get("probe", ""), accept=tuple(accepted), tests=table.get("tests", False)
    )


def _listify_t(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def recipe_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand folders to their *.toml files (sorted); files are kept as given, missing ones too."""
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.toml")) if p.is_dir() else [p])
    return out


@dataclass(frozen=True)
class LintResult:
    path: Path
    recipe: Recipe | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "project": self.recipe.name if self.recipe else None,
            "ok": self.ok,
            "errors": [p.to_dict() for p in self.problems],
        }


def lint(paths: Iterable[Path | str]) -> list[LintResult]:
    """Load every recipe under `paths`; one bad recipe never hides the others."""
    results = []
    for path in recipe_files(paths):
        try:
            results.append(LintResult(path, load_recipe(path), ()))
        except RecipeError as exc:
            results.append(LintResult(path, None, tuple(exc.problems)))
    return results
