"""Requirements / lock files -> pins -> missing wheels, and `recipe new` from a real sdist."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.projects import make_sdist
from support.static_index import FileSpec, StaticIndexServer, write_static_index

from builder.cli import main
from builder.common.httpcache import HttpCache
from builder.common.upstream import IndexClient
from builder.plan.pins import PinsError, marker_env, parse_requirements, plan_pins, read_pins
from builder.plan.starting_recipe import RecipeNewError, inspect_sdist, write_recipe
from builder.recipes.recipe import load_recipe

REQUIREMENTS = textwrap.dedent(
    """\
    # a team's pins
    -r base.txt
    --index-url https://example.invalid/simple
    -e ./local-project
    native-demo==1.2.0 \\
        --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000 \\
        --hash=sha256:1111111111111111111111111111111111111111111111111111111111111111
    Pure_Lib == 3.0   # has a py3-none-any wheel
    winonly==1.0 ; sys_platform == "win32"
    floating>=1.0
    direct @ https://example.invalid/direct-1.0.tar.gz
    not a requirement!
    missing-upstream==9.9
    """
)


@pytest.fixture(scope="module")
def native_sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sdist(tmp_path_factory.mktemp("sdist"), "native-demo", "1.2.0", c_extension=True)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, native_sdist: Path
) -> Iterator[StaticIndexServer]:
    root = tmp_path_factory.mktemp("index")
    pure = make_sdist(tmp_path_factory.mktemp("pure"), "pure-lib", "3.0")
    write_static_index(
        root,
        {
            "native-demo": [
                FileSpec("native_demo-1.1.0.tar.gz", b"old"),
                FileSpec(native_sdist.name, native_sdist.read_bytes(), requires_python=">=3.10"),
                FileSpec("native_demo-1.3.0rc1.tar.gz", b"pre"),
            ],
            "pure-lib": [
                FileSpec(pure.name, pure.read_bytes()),
                FileSpec("pure_lib-2.0.tar.gz", b"not a tarball"),
                FileSpec("pure_lib-3.0-py3-none-any.whl", b"pure wheel"),
            ],
            "winonly": [FileSpec("winonly-1.0.tar.gz", b"win")],
        },
    )
    with StaticIndexServer(root) as srv:
        yield srv


def test_parse_requirements_handles_the_usual_mess(tmp_path: Path) -> None:
    pins, notes = parse_requirements(tmp_path / "requirements.txt", REQUIREMENTS)
    assert [(p.name, p.version) for p in pins] == [
        ("native-demo", "1.2.0"),
        ("Pure_Lib", "3.0"),
        ("winonly", "1.0"),
        ("missing-upstream", "9.9"),
    ]
    assert pins[0].source.endswith("requirements.txt:5")  # the first line of a continued line
    assert str(pins[2].marker) == 'sys_platform == "win32"'
    text = "\n".join(notes)
    for expected in ["option line ignored: -r", "option line ignored: --index-url", "option line ignored: -e",
                     "floating is not pinned", "direct is a direct URL reference", "not a requirement"]:  # fmt: skip
        assert expected in text, text


def test_lock_files(tmp_path: Path) -> None:
    uv = tmp_path / "uv.lock"
    uv.write_text(textwrap.dedent("""\
        version = 1
        [[package]]
        name = "numpy"
        version = "1.26.4"
        source = { registry = "https://pypi.org/simple" }
        [[package]]
        name = "myapp"
        version = "0.1.0"
        source = { editable = "." }
        """))  # fmt: skip
    pins, notes = read_pins(uv)
    assert [(p.name, p.version) for p in pins] == [("numpy", "1.26.4")] and "myapp" in notes[0]
    pylock = tmp_path / "pylock.toml"
    pylock.write_text(textwrap.dedent("""\
        lock-version = "1.0"
        [[packages]]
        name = "cffi"
        version = "1.16.0"
        marker = "platform_python_implementation == 'CPython'"
        """))  # fmt: skip
    (pin,) = read_pins(pylock)[0]
    assert (pin.name, pin.version) == ("cffi", "1.16.0") and pin.marker
    poetry = tmp_path / "poetry.lock"
    poetry.write_text('[[package]]\nname = "lxml"\nversion = "5.2.1"\n')
    assert [(p.name, p.version) for p in read_pins(poetry)[0]] == [("lxml", "5.2.1")]
    bad = tmp_path / "broken.lock"
    bad.write_text("[[package]\n")
    with pytest.raises(PinsError, match=r"broken\.lock: not a TOML lock file"):
        read_pins(bad)


def test_marker_env() -> None:
    env = marker_env("3.12", "macosx_11_0_arm64")
    assert env["sys_platform"] == "darwin" and env["platform_machine"] == "arm64"
    env = marker_env("3.11", "manylinux_2_28_aarch64")
    assert env["platform_machine"] == "aarch64" and env["python_version"] == "3.11"


def test_plan_pins(server: StaticIndexServer, tmp_path: Path) -> None:
    pins, _ = parse_requirements(tmp_path / "r.txt", REQUIREMENTS)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "pure-lib.toml").write_text("")  # only its existence matters here
    with IndexClient(server.url, cache=HttpCache(tmp_path / "c")) as up:
        reports, errors = plan_pins(
            pins, up, pythons=["3.11"], targets=["manylinux_2_28_aarch64", "macosx_11_0_arm64"],
            recipes_dir=recipes,
        )  # fmt: skip
    by = {r.pin.name: r for r in reports}
    assert [(d.python, d.target) for d in by["native-demo"].missing] == [
        ("3.11", "manylinux_2_28_aarch64"), ("3.11", "macosx_11_0_arm64")
    ]  # fmt: skip
    assert by["native-demo"].recipe is None
    assert not by["Pure_Lib"].missing and by["Pure_Lib"].recipe == recipes / "pure-lib.toml"
    assert not by["winonly"].missing  # the marker rules it out on these targets
    assert all("marker" in d.reason for d in by["winonly"].decisions)
    assert len(errors) == 1 and "missing-upstream" in str(errors[0]) and "404" in str(errors[0])


def test_inspect_sdist(native_sdist: Path) -> None:
    facts = inspect_sdist(native_sdist, "native-demo")
    assert facts.languages == {"C": 1} and facts.packages == ("native_demo",)
    assert "setup.py" in facts.build_files


def test_recipe_new_writes_a_lint_clean_recipe(server: StaticIndexServer, tmp_path: Path) -> None:
    with IndexClient(server.url, cache=HttpCache(tmp_path / "c")) as up:
        path = write_recipe("Native_Demo", up, tmp_path, targets=["manylinux_2_28_aarch64"])
        with pytest.raises(RecipeNewError, match="already exists"):
            write_recipe("native-demo", up, tmp_path)
    assert path == tmp_path / "native-demo.toml"
    text = path.read_text()
    assert "compiled sources (1 C files)" in text
    r = load_recipe(path)
    assert r.latest == 3 and r.test.imports == ("native_demo",)
    assert r.pythons == (
        "3.10",
        "3.11",
        "3.12",
        "3.13",
    )  # requires-python >=3.10 of 1.2.0, not the rc


def test_recipe_new_cli(
    server: StaticIndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(
        main,
        [
            "recipe",
            "new",
            "pure-lib",
            "--index",
            server.url,
            "--dir",
            str(tmp_path),
            "--python",
            "3.12",
        ],
    )
    assert res.exit_code == 0, res.output
    text = (tmp_path / "pure-lib.toml").read_text()
    assert "has no C/C++/Cython/Rust sources: a pure Python wheel may suffice" in text
    assert CliRunner().invoke(main, ["recipe", "lint", str(tmp_path)]).exit_code == 0
    res = CliRunner().invoke(
        main, ["recipe", "new", "nope", "--index", server.url, "--dir", str(tmp_path)]
    )
    assert res.exit_code == 1 and "no project 'nope' on this index (404)" in res.output
    res = CliRunner().invoke(
        main,
        [
            "recipe",
            "new",
            "pure-lib",
            "--version",
            "2.0",
            "--index",
            server.url,
            "--dir",
            str(tmp_path / "x"),
        ],
    )
    assert res.exit_code == 1 and "pure_lib-2.0.tar.gz: not a readable sdist" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_plan_requirements_cli_writes_recipes(
    server: StaticIndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHEELFARM_CACHE", str(tmp_path / "cache"))
    req = tmp_path / "requirements.txt"
    req.write_text(REQUIREMENTS.replace("missing-upstream==9.9\n", ""))
    out = tmp_path / "new-recipes"
    args = ["plan", "-r", str(req), "--index", server.url, "--python", "3.11",
            "--target", "manylinux_2_28_aarch64", "--recipes-dir", str(tmp_path / "none"),
            "--write-recipes", str(out), "--json"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [p["name"] for p in doc["pins"] if p["missing"]] == ["native-demo"]
    assert doc["written"] == [str(out / "native-demo.toml")]
    r = load_recipe(out / "native-demo.toml")
    assert str(r.versions) == "==1.2.0" and r.targets == ("manylinux_2_28_aarch64",)
    res = CliRunner().invoke(main, ["plan", "-r", str(req), "--index", server.url])
    assert res.exit_code == 2 and "needs at least one --target" in res.output
