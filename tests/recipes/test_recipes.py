from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli import main
from builder.recipes.recipe import RecipeError, load_recipe, parse_recipe, schema

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[project]
name = "Demo_Pkg"
versions = ">=1.0,<3"
latest = 2
pythons = ["3.11", "3.13t"]
targets = ["manylinux_2_28_aarch64", "manylinux2014_aarch64", "musllinux_1_2_aarch64", "macosx_11_0_arm64", "macosx_10_9_universal2"]

[build]
backend = "cibuildwheel"
fallback = ["emulated"]
build = ["cp311-*", "{cp312,cp313}-manylinux_*"]
skip = "*-musllinux_* cp313t-*"
environment = "CFLAGS='-O2 -g' LDFLAGS=-s"
before-all = ["apt-get update", "apt-get install -y zlib1g-dev"]
before-build = "pip install cython"
config-settings = { "cmake.define.FOO" = "1", "--build-option" = ["--a", "--b"] }
build-requires = ["cython>=3", "numpy; python_version>='3.12'"]

[[native]]
name = "zlib"
source = "https://zlib.net/zlib-1.3.1.tar.gz"
sha256 = "9a93b2b7dfdac77ceba5a558a580e74667dd6fede4585b91eefb60f03b72df23"
build-system = "autotools"
args = ["--static"]

[[native]]
name = "librdkafka"
source = "debian:librdkafka"
build-system = "debian-binary"

[test]
imports = ["demo_pkg", "demo_pkg._native"]
call = "import demo_pkg; assert demo_pkg.triangle(3) == 6"
test-requires = "pytest>=8 numpy"
test-command = ["pytest {project}/tests", "python -c 'import demo_pkg'"]
"""


def write(tmp_path: Path, text: str, name: str = "demo-pkg.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str, name: str = "demo-pkg.toml") -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, text, name))
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def test_good_recipe_loads_into_dataclasses(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, GOOD))
    assert r.name == "Demo_Pkg" and r.canonical_name == "demo-pkg"
    assert r.latest == 2 and "2.5" in r.versions and "3.0" not in r.versions
    assert r.pythons == ("3.11", "3.13t") and len(r.targets) == 5
    b = r.build
    assert b.backend == "cibuildwheel" and b.fallback == ("emulated",)
    assert b.build == ("cp311-*", "{cp312,cp313}-manylinux_*")
    assert b.skip == ("*-musllinux_*", "cp313t-*")
    assert dict(b.environment) == {"CFLAGS": "-O2 -g", "LDFLAGS": "-s"}
    assert b.before_all == "apt-get update && apt-get install -y zlib1g-dev"
    assert dict(b.config_settings) == {"cmake.define.FOO": "1", "--build-option": ("--a", "--b")}
    assert b.selects("cp311-manylinux_aarch64") and not b.selects("cp311-musllinux_aarch64")
    assert b.selects("cp311-macosx_arm64") and b.selects("cp312-manylinux_aarch64")
    assert not b.selects("cp312-macosx_arm64") and not b.selects("cp310-manylinux_aarch64")
    assert r.native[0].sha256 and r.native[0].args == ("--static",)
    assert r.native[1].debian_package == "librdkafka" and r.native[0].debian_package is None
    older = dataclasses.replace(r.native[1], source="debian:openssl@bullseye")
    assert older.debian_package == "openssl"  # a suite other than bookworm: `@suite`
    assert r.test.test_requires == ("pytest>=8", "numpy")
    assert r.test.test_command == "pytest {project}/tests && python -c 'import demo_pkg'"
    assert len(r.content_hash) == 64
    hash(r)  # frozen and hashable: usable as a dict key
    with pytest.raises(TypeError):
        r.build.environment["X"] = "1"  # type: ignore[index]


def test_minimal_recipe_defaults_to_newest_release(tmp_path: Path) -> None:
    r = load_recipe(
        write(
            tmp_path,
            """
            [project]
            name = "demo-pkg"
            pythons = ["3.12"]
            targets = ["manylinux_2_17_aarch64"]
            [test]
            imports = ["demo_pkg"]
            """,
        )
    )
    assert r.latest == 1 and str(r.versions) == ""
    assert r.build.backend == "cross" and r.build.selects("cp312-manylinux_aarch64")
    assert r.native == () and r.test.call == ""


def test_every_problem_of_a_file_is_reported_with_key(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [project]
        name = "Other"
        versions = ">=2.0,<<3"
        latest = 0
        pythons = ["3.11", "2.7", 3, "3.11"]
        targets = ["manylinux_2_17_aarch64", "linux_aarch64", "manylinux_2_17_arm64", "macosx_11_3_arm64", "manylinux1_aarch64"]
        colour = "blue"
        [build]
        backend = "fast"
        skip = "cp311-foo_*"
        build = "cp3{1,"
        environment = { CFLAGS = 2 }
        before-all = [1]
        config-settings = "novalue"
        build-requires = ["ok>=1", "bad>="]
        [[native]]
        name = "x"
        source = "https://example.com/x.tgz"
        build-system = "scons"
        [[native]]
        name = "x"
        source = "ftp://nope"
        sha256 = "ABC"
        build-system = "make"
        [test]
        imports = ["good", "not-a-module"]
        call = "import ("
        test-requires = "pytest>="
        extra = 1
        [extras]
        """,
    )
    text = "\n".join(found)
    for expected in [
        "project.name: project 'Other' belongs in a file named other.toml",
        "project.versions: '>=2.0,<<3' is not a PEP 440 specifier",
        "project.latest: must be at least 1",
        "project.pythons: has duplicate entries",
        "project.pythons[1]: '2.7'",
        "project.pythons[2]: must be a string, not 3",
        "project.targets[1]: 'linux_aarch64': not a platform tag",
        "project.targets[2]: 'manylinux_2_17_arm64': unknown Linux architecture 'arm64'",
        "project.targets[3]: 'macosx_11_3_arm64': macOS 11 and later are tagged with minor 0",
        "project.targets[4]: 'manylinux1_aarch64': manylinux1 has no 'aarch64'",
        "project.colour: unknown key (known: latest, name, pythons, targets, versions)",
        'build.backend: must be one of "cross", "emulated", "cibuildwheel"',
        "build.skip: bad selector: 'cp311-foo_*' matches no build identifier",
        "build.build: bad selector: unbalanced '{'",
        "build.environment: must be a table of strings",
        "build.before-all: must be a string or a list of strings, not [1]",
        "build.config-settings: 'novalue' is not KEY=VALUE",
        "build.build-requires[1]: not a PEP 508 requirement",
        "native[0].sha256: a URL source needs its sha256",
        'native[0].build-system: must be one of "autotools"',
        'native[1].source: must be "debian:<source package>[@<suite>]" or an http(s) URL',
        "native[1].sha256: must be 64 lowercase hex digits",
        "native[1].name: 'x' is listed twice",
        "test.imports[1]: 'not-a-module' is not a module name",
        "test.call: not valid Python",
        "test.test-requires[0]: not a PEP 508 requirement",
        "test.extra: unknown key",
        "extras: unknown key",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    # the wrong-typed python is reported once, by the schema
    assert sum("project.pythons[2]" in p for p in found) == 1


def test_fallback_must_differ_from_backend(tmp_path: Path) -> None:
    text = GOOD.replace('fallback = ["emulated"]', 'fallback = ["cibuildwheel"]')
    assert problems(tmp_path, text) == ["build.fallback: repeats the main backend 'cibuildwheel'"]


def test_missing_sections_and_keys(tmp_path: Path) -> None:
    assert problems(tmp_path, "[project]\nname = 'demo-pkg'\n") == [
        "project.pythons: missing key",
        "project.targets: missing key",
        "test: missing key",
    ]


def test_syntax_error_is_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, "[project\nname = 1\n"))
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / "demo-pkg.toml") + ": TOML syntax error")
    assert "line 1" in msg and "\n" not in msg


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="cannot read"):
        load_recipe(tmp_path / "missing.toml")
    with pytest.raises(RecipeError, match="not UTF-8"):
        parse_recipe(tmp_path / "x.toml", b"\xff\xfe")


def test_schema_is_valid_and_shipped() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["properties"]["build"]["properties"]["before-all"]


def test_shipped_recipes_lint_clean() -> None:
    files = sorted((REPO / "recipes").glob("*.toml"))
    assert files, "the repository ships example recipes"
    for path in files:
        load_recipe(path)


def test_lint_command_reports_all_files_and_exit_status(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(tmp_path, "[project]\nname='bad'\nwat=1\n", "bad.toml")
    write(tmp_path, "[[[", "broken.toml")
    result = CliRunner().invoke(main, ["recipe", "lint", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"{tmp_path / 'bad.toml'}: project.wat: unknown key") for line in lines
    )
    assert any(line.startswith(f"{tmp_path / 'broken.toml'}: TOML syntax error") for line in lines)
    assert not any("demo-pkg.toml" in line for line in lines)

    result = CliRunner().invoke(main, ["recipe", "lint", "--json", str(tmp_path)])
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and doc["ok"] is False
    by_file = {Path(r["path"]).name: r for r in doc["recipes"]}
    assert by_file["demo-pkg.toml"]["ok"] and by_file["demo-pkg.toml"]["project"] == "Demo_Pkg"
    assert {e["key"] for e in by_file["bad.toml"]["errors"]} >= {"project.wat", "test"}

    ok = CliRunner().invoke(main, ["recipe", "lint", str(tmp_path / "demo-pkg.toml")])
    assert ok.exit_code == 0, ok.output
