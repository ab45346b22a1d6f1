"""The farm configuration: one file says where the recipes, indexes, data and cache are.

Lookup (the first found is used, never merged with another file):
1. `wheelfarm.toml`, else a `pyproject.toml` with a `[tool.wheelfarm]` table, in the current folder,
   then in each parent folder;
2. the file `$WHEELFARM_CONFIG` names (either kind). `WHEELFARM_CONFIG=/dev/null` (os.devnull, as pip's
   PIP_CONFIG_FILE) reads no file at all.

Values are merged in this order, each later one winning, and every value remembers where it came from
(`wheelfarm config` shows it): built-in defaults, the file, environment variables ($WHEELFARM_DATA,
$WHEELFARM_CACHE, $WHEELFARM_OWN_INDEX), command-line options (`FarmConfig.with_options`).
The file is validated against one JSON Schema (farmconfig.schema.json) plus what a schema cannot say
(platform tags, Python versions); a bad file is an error naming the file and the key.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from builder.common.targets import TargetError, parse_python, parse_target

FILE_NAME = "wheelfarm.toml"
CONFIG_ENV = "WHEELFARM_CONFIG"
KEYS = ("recipes", "upstream", "own-index", "targets", "pythons", "data", "cache")
PATH_KEYS = ("recipes", "data", "cache")
ENV_VARS = {
    "data": "WHEELFARM_DATA",
    "cache": "WHEELFARM_CACHE",
    "own-index": "WHEELFARM_OWN_INDEX",
}


def index_base_url(url: str) -> str:
    """A wheelfarm index's base URL from its base, /simple/ or /legacy/ URL (no trailing slash)."""
    base = url.rstrip("/")
    for suffix in ("/simple", "/legacy"):
        base = base.removesuffix(suffix)
    return base


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "default", "<file>", "$WHEELFARM_DATA", "--own-index", ...


@dataclass(frozen=True)
class FarmConfig:
    file: Path | None
    settings: Mapping[str, Setting] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.settings[key].value

    @property
    def recipes(self) -> Path:
        return self["recipes"]

    @property
    def upstream(self) -> str:
        return self["upstream"]

    @property
    def own_index(self) -> str | None:
        return self["own-index"]

    @property
    def own_simple_url(self) -> str | None:
        """The own index's PEP 503/691 URL (the config names the base URL, or its /simple/)."""
        return index_base_url(self.own_index) + "/simple/" if self.own_index else None

    @property
    def targets(self) -> tuple[str, ...]:
        return self["targets"]

    @property
    def pythons(self) -> tuple[str, ...]:
        return self["pythons"]

    @property
    def data(self) -> Path:
        return self["data"]

    @property
    def cache(self) -> Path:
        return self["cache"]

    def source(self, key: str) -> str:
        return self.settings[key].source

    def with_options(self, **options: Any) -> FarmConfig:
        """Command-line options win: `with_options(own_index=("--own-index", url))`; a None or empty
        value means the option was not given."""
        settings = dict(self.settings)
        for name, (flag, value) in options.items():
            key = name.replace("_", "-")
            if key not in settings:
                raise KeyError(key)
            if value is None or value == () or value == []:
                continue
            if key in PATH_KEYS:
                value = Path(value)
            elif key in ("targets", "pythons"):
                value = tuple(value)
            settings[key] = Setting(value, flag)
        return replace(self, settings=settings)

    def to_dict(self) -> dict[str, object]:
        def plain(v: Any) -> Any:
            return str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v

        return {
            "file": str(self.file) if self.file else None,
            "settings": {
                k: {"value": plain(s.value), "source": s.source} for k, s in self.settings.items()
            },
        }


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("farmconfig.schema.json").read_text())


def find_config_file(
    start: Path | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The configuration file that applies in `start` (default: the current folder), or None."""
    env = os.environ if env is None else env
    explicit = env.get(CONFIG_ENV, "")
    if explicit == os.devnull:
        return None
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _has_tool_table(pyproject):
            return pyproject
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"${CONFIG_ENV}: {path}: no such file")
        return path.resolve()
    return None


def _has_tool_table(pyproject: Path) -> bool:
    try:
        data = tomllib.loads(pyproject.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        if "[tool.wheelfarm]" in pyproject.read_text(errors="replace"):
            raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
        return False  # somebody else's broken pyproject.toml is not ours to judge
    return "wheelfarm" in data.get("tool", {})


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's wheelfarm table, validated; raises ConfigError naming the file and key."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> dict[str, Any]:
    """Validate the text of `path` (a pyproject.toml: its [tool.wheelfarm] table)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("wheelfarm")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: no [tool.wheelfarm] table")
        data = table
    problems = list(_problems(data))
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems))
    return data


def _problems(data: dict[str, Any]) -> Iterator[str]:
    validator_cls = jsonschema.validators.validator_for(schema())
    errors = sorted(
        validator_cls(schema()).iter_errors(data), key=lambda e: [str(p) for p in e.path]
    )
    for err in errors:
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err.path)
        where = where.replace(".[", "[")
        if err.validator == "additionalProperties":
            unknown = sorted(set(data) - set(schema()["properties"]))
            yield f"unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})"
            continue
        message = err.schema.get("errorMessage") if isinstance(err.schema, dict) else None
        yield f"{where or '(top)'}: {err.instance!r}: {message or err.message}"
    if errors:
        return
    for i, tag in enumerate(data.get("targets", ())):
        try:
            parse_target(tag)
        except TargetError as exc:
            yield f"targets[{i}]: {tag!r}: {exc}"
    for i, py in enumerate(data.get("pythons", ())):
        try:
            parse_python(py)
        except TargetError as exc:
            yield f"pythons[{i}]: {py!r}: {exc}"
    up = data.get("upstream")
    if up is not None and up not in ("pypi", "pip") and not up.startswith(("http://", "https://")):
        yield f"upstream: {up!r}: 'pypi', 'pip' or an http:// or https:// URL"


def _defaults(env: Mapping[str, str]) -> dict[str, Setting]:
    home = Path.home()
    data_base = env.get("XDG_DATA_HOME")
    cache_base = env.get("XDG_CACHE_HOME")
    return {
        "recipes": Setting(Path("recipes"), "default (./recipes)"),
        "upstream": Setting("pypi", "default"),
        "own-index": Setting(None, "default (none)"),
        "targets": Setting((), "default (none)"),
        "pythons": Setting((), "default (none)"),
        "data": Setting(
            Path(data_base or home / ".local" / "share").expanduser() / "wheelfarm",
            "default ($XDG_DATA_HOME/wheelfarm)" if data_base else "default",
        ),
        "cache": Setting(
            Path(cache_base or home / ".cache").expanduser() / "wheelfarm",
            "default ($XDG_CACHE_HOME/wheelfarm)" if cache_base else "default",
        ),
    }


def load_config(start: Path | None = None, env: Mapping[str, str] | None = None) -> FarmConfig:
    """Defaults, then the configuration file, then the environment (see the module's docstring)."""
    env = os.environ if env is None else env
    settings = _defaults(env)
    path = find_config_file(start, env)
    if path is not None:
        for key, value in read_config_file(path).items():
            if key in PATH_KEYS:
                value = path.parent / Path(value).expanduser()
            elif key in ("targets", "pythons"):
                value = tuple(value)
            settings[key] = Setting(value, str(path))
    for key, var in ENV_VARS.items():
        if value := env.get(var):
            settings[key] = Setting(
                Path(value).expanduser() if key in PATH_KEYS else value, f"${var}"
            )
    return FarmConfig(path, settings)


def render_config(values: Mapping[str, Any]) -> str:
    """A commented wheelfarm.toml holding `values` (for `wheelfarm init`)."""
    props = schema()["properties"]
    lines = [
        "# wheelfarm's farm configuration: every wheelfarm command run in this folder or below reads it",
        "# (or anywhere, with WHEELFARM_CONFIG=/path/to/this/file). Command-line options win over it;",
        "# $WHEELFARM_DATA, $WHEELFARM_CACHE and $WHEELFARM_OWN_INDEX too. `wheelfarm config` shows the",
        "# merged result and where each value came from. Relative paths are relative to this file.",
        "",
    ]
    for key in KEYS:
        lines.append(f"# {props[key]['description']}")
        if key in values and values[key] is not None:
            lines.append(f"{key} = {_toml_value(values[key])}")
        else:
            lines.append(f"# {key} = ...")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
    return json.dumps(str(value))
