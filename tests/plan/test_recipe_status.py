"""Upstream catches up: the plan says so, and `wheelfarm recipe status` lists recipes no longer needed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from support.static_index import FileSpec, StaticIndexServer, write_static_index

from builder.cli import main

ARM = "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64"


def recipe(path: Path, name: str) -> str:
    path.joinpath(f"{name}.toml").write_text(
        f'[project]\nname = "{name}"\npythons = ["3.11"]\ntargets = ["manylinux_2_28_aarch64"]\n'
        f'[test]\nimports = ["{name.replace("-", "_")}"]\n'
    )
    return str(path / f"{name}.toml")


def test_recipe_status_and_caught_up_cells(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))
    sdist = lambda n: FileSpec(f"{n.replace('-', '_')}-1.0.tar.gz", n.encode())  # noqa: E731
    wheel = lambda n, b=b"x": FileSpec(f"{n.replace('-', '_')}-1.0-{ARM}.whl", b)  # noqa: E731
    write_static_index(
        tmp_path / "up",
        {
            "caught-up": [sdist("caught-up"), wheel("caught-up", b"upstream's own")],
            "still-missing": [sdist("still-missing")],
        },
    )
    write_static_index(tmp_path / "own", {"caught-up": [wheel("caught-up", b"ours")]})
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    paths = [recipe(recipes, "caught-up"), recipe(recipes, "still-missing")]
    with StaticIndexServer(tmp_path / "up") as up, StaticIndexServer(tmp_path / "own") as own:
        planned = CliRunner().invoke(
            main, ["plan", "--json", "--index", up.url, "--own-index", own.url, *paths]
        )
        status = CliRunner().invoke(
            main, ["recipe", "status", "--json", "--index", up.url, "--own-index", own.url, *paths]
        )
    assert planned.exit_code == 0, planned.output
    (cell,) = [c for c in json.loads(planned.stdout)["available"] if c["project"] == "caught-up"]
    assert "upstream caught up with our caught_up-1.0-" in cell["reason"]
    assert status.exit_code == 0, status.output
    rows = {r["project"]: r for r in json.loads(status.stdout)["recipes"]}
    assert rows["caught-up"]["needed"] is False
    assert rows["caught-up"]["caught_up"] == [f"caught_up-1.0-{ARM}.whl"]
    assert rows["still-missing"]["needed"] is True and rows["still-missing"]["cells"]["build"] == 1
