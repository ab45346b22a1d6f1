"""The farm configuration: lookup order, precedence (defaults < file < environment < options), errors,
`wheelfarm init` / `wheelfarm config`, and `plan -r` inside the clone using the shipped farm's file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.static_index import FileSpec, StaticIndexServer, write_static_index

from builder.cli import main
from builder.common.farmconfig import ConfigError, find_config_file, load_config
from builder.common.paths import cache_dir, data_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest.py sets WHEELFARM_CONFIG=/dev/null for every other test; these test the lookup itself.
    for var in ("WHEELFARM_CONFIG", "WHEELFARM_DATA", "WHEELFARM_CACHE", "WHEELFARM_OWN_INDEX"):
        monkeypatch.delenv(var, raising=False)


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('upstream = "https://elsewhere.example/simple/"\n')
    assert find_config_file(deep) is None
    # $WHEELFARM_CONFIG when nothing is found upwards
    monkeypatch.setenv("WHEELFARM_CONFIG", str(elsewhere))
    assert find_config_file(deep) == elsewhere
    # a pyproject.toml without [tool.wheelfarm] is not a configuration: the lookup goes on
    (tmp_path / "a" / "b" / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config_file(deep) == elsewhere
    # [tool.wheelfarm] in a pyproject.toml upwards wins over $WHEELFARM_CONFIG
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.wheelfarm]\nupstream = "pip"\n')
    assert find_config_file(deep) == tmp_path / "a" / "pyproject.toml"
    assert load_config(deep).upstream == "pip"
    # a nearer wheelfarm.toml wins over a pyproject.toml further up
    (tmp_path / "a" / "b" / "wheelfarm.toml").write_text('recipes = "../r"\n')
    cfg = load_config(deep)
    assert cfg.file == tmp_path / "a" / "b" / "wheelfarm.toml"
    # relative paths are relative to the file, and a value the file does not set stays default
    assert cfg.recipes.resolve() == (tmp_path / "a" / "r").resolve()
    assert (cfg.upstream, cfg.source("upstream")) == ("pypi", "default")
    # in one folder, wheelfarm.toml wins over pyproject.toml
    (tmp_path / "a" / "wheelfarm.toml").write_text('upstream = "https://a.example/simple/"\n')
    assert find_config_file(tmp_path / "a") == tmp_path / "a" / "wheelfarm.toml"
    # /dev/null reads no file at all
    monkeypatch.setenv("WHEELFARM_CONFIG", os.devnull)
    assert find_config_file(deep) is None and load_config(deep).file is None


def test_precedence_defaults_file_env_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wheelfarm.toml").write_text(
        'data = "state"\ncache = "/var/cache/wf"\nown-index = "http://farm.example/"\n'
        'targets = ["manylinux_2_28_aarch64"]\n'
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg.data == tmp_path / "state" and cfg.source("data") == str(tmp_path / "wheelfarm.toml")
    assert data_dir() == tmp_path / "state" and cache_dir() == Path("/var/cache/wf")
    assert cfg.own_simple_url == "http://farm.example/simple/"
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("WHEELFARM_OWN_INDEX", "http://env.example/simple/")
    cfg = load_config()
    assert (cfg.data, cfg.source("data")) == (tmp_path / "env-data", "$WHEELFARM_DATA")
    assert data_dir() == tmp_path / "env-data"
    assert cfg.source("own-index") == "$WHEELFARM_OWN_INDEX"
    cfg = cfg.with_options(
        own_index=("--own-index", "http://opt.example/"),
        targets=("--target", ()),  # not given: the file's value stands
        data=("--data", None),
    )
    assert (cfg.own_index, cfg.source("own-index")) == ("http://opt.example/", "--own-index")
    assert cfg.targets == ("manylinux_2_28_aarch64",) and cfg.source("data") == "$WHEELFARM_DATA"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("recipes = [1\n", "invalid TOML"),
        ("recipe = 'x'\n", "unknown key(s) recipe (known: recipes,"),
        ("targets = 'manylinux_2_28_aarch64'\n", "targets: 'manylinux_2_28_aarch64': "),
        ("targets = ['manylinux_2_17_arm64']\n", "targets[0]: 'manylinux_2_17_arm64': unknown"),
        ("pythons = ['3']\n", "pythons[0]: '3': "),
        ("own-index = 'farm.example'\n", "own-index: 'farm.example': an http:// or https:// URL"),
        ("upstream = 'ftp://x'\n", "upstream: 'ftp://x': 'pypi', 'pip' or an http"),
    ],
)
def test_bad_file_names_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = tmp_path / "wheelfarm.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="^" + str(path).replace(".", r"\.") + ": ") as err:
        load_config(tmp_path)
    assert message in str(err.value)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["config"])  # every command: one clean error, no traceback
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["recipe", "lint"])
    assert res.exit_code == 1 and message in res.output


def test_missing_env_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHEELFARM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"\$WHEELFARM_CONFIG: .*nope.toml: no such file"):
        load_config(tmp_path)


def test_init_then_config_shows_each_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["init", "--python", "3.12", "--data", "farm-data"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "wheelfarm.toml").read_text()
    assert text.count("\n# ") >= 7  # a comment on every key
    res = CliRunner().invoke(main, ["init"])
    assert res.exit_code == 1 and "exists (--force replaces it)" in res.output
    res = CliRunner().invoke(main, ["init", "--force", "--target", "linux_arm64"])
    assert res.exit_code == 1 and "targets[0]: 'linux_arm64'" in res.output
    assert (tmp_path / "wheelfarm.toml").read_text() == text  # a refused init changes nothing
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "c"))
    doc = json.loads(CliRunner().invoke(main, ["config", "--json"]).output)
    here = str(tmp_path / "wheelfarm.toml")
    assert doc["file"] == here
    s = doc["settings"]
    assert s["pythons"] == {"value": ["3.12"], "source": here}
    assert s["data"] == {"value": str(tmp_path / "farm-data"), "source": here}
    assert s["cache"] == {"value": str(tmp_path / "c"), "source": "$WHEELFARM_CACHE"}
    assert s["targets"]["value"] == ["manylinux_2_28_aarch64"]
    plain = CliRunner().invoke(main, ["config"]).output
    assert f"file: {here}" in plain and "$WHEELFARM_CACHE" in plain


def _crcmod_index(root: Path) -> None:
    sdist = FileSpec("crcmod-1.7.tar.gz", b"not really an sdist")
    write_static_index(
        root, {"crcmod": [sdist], "six": [FileSpec("six-1.16.0-py2.py3-none-any.whl")]}
    )


def test_shipped_config_plan_requirements_from_a_subfolder(tmp_path: Path) -> None:
    """The clone's own wheelfarm.toml: `plan -r` from a subfolder finds the shipped recipes and the
    targets and Pythons, and names the farm's own index (here not running: a warning, no failure)."""
    _crcmod_index(tmp_path / "up")
    req = tmp_path / "requirements.txt"
    req.write_text("crcmod==1.7\nsix==1.16.0\n")
    env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_CONFIG"}
    env["WHEELFARM_CACHE"] = str(tmp_path / "cache")
    shipped = load_config(REPO, env)
    assert shipped.file == REPO / "wheelfarm.toml" and shipped.recipes == REPO / "recipes"
    with StaticIndexServer(tmp_path / "up") as up:
        proc = subprocess.run(
            ["wheelfarm", "plan", "-r", str(req), "--index", up.url, "--json"],
            cwd=REPO / "builder" / "plan",
            env=env | {"WHEELFARM_OWN_INDEX": "http://127.0.0.1:9/"},  # nothing listens there
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    crcmod = next(p for p in doc["pins"] if p["name"] == "crcmod")
    assert crcmod["recipe"] == str(REPO / "recipes" / "crcmod.toml")
    assert [(m["python"], m["target"]) for m in crcmod["missing"]] == [
        (shipped.pythons[0], shipped.targets[0])
    ]
    assert "warning: the farm's own index http://127.0.0.1:9/simple/" in proc.stderr
    assert "(own-index from $WHEELFARM_OWN_INDEX)" in proc.stderr
    assert "planning without it" in proc.stderr
