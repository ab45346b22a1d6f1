"""The shipped recipes, built from their real PyPI sdists (pinned by version and sha256), repaired and
tested under qemu-aarch64. Run with `.venv/bin/pytest -m e2e tests/e2e/test_recipes_e2e.py`.

Each build goes through `wheelfarm build` exactly as a user runs it: the sdist comes from PyPI and its
sha256 must be the pinned one; native libraries come from Debian bookworm's source packages.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TARGET = "manylinux_2_17_aarch64"

# project, version, sdist sha256 (PyPI), libraries auditwheel must graft into <pkg>.libs/
SHIPPED = [
    ("confluent-kafka", "2.0.2", "3b342ea4226ed105ca8bc035b0877e4dc2f115ffda74e3a350f363683356515b", ("librdkafka",)),
    ("uamqp", "1.6.11", "6bab2fb249cb2ca312795093747227de3f09648f8dad77f432b49a45e5bc403d", ("libssl", "libcrypto")),
    ("crcmod", "1.7", "dc7051a0db5f2bd48665a990d3ec1cc305a466a77358ca4492826f41f283601e", ()),
    ("netifaces", "0.11.0", "043a79146eb2907edf439899f262b3dfe41717d34124298ed281139a8b93ca32", ()),
    ("pyrsistent", "0.16.1", "aa2ae1c2e496f4d6777f869ea5de7166a8ccb9c2e06ebcf6c7ff1b670c98c5ef", ()),
    ("python-levenshtein", "0.12.2", "dc2395fbd148a1ab31090dd113c366695934b9e85fe5a4b2a032745efd0346f6", ()),
    ("markupsafe", "3.0.4", "2e9ad7dd851bf45fab9f75cbff4cb493fee9979e8d8c7c9c3ee119022518edd6", ()),
]  # fmt: skip
# recipes with [parity] tests: what the parity gate must report of the project's own test suite
# (run with PyPI's x86_64 wheel on the host and with ours under qemu)
PARITY_TESTS = {"markupsafe": "80/80 tests same outcome"}


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    ("project", "version", "sha256", "grafted"), SHIPPED, ids=[s[0] for s in SHIPPED]
)
def test_shipped_recipe_builds_and_passes_its_test(
    project: str,
    version: str,
    sha256: str,
    grafted: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    recipe = RECIPES / f"{project}.toml"
    proc = subprocess.run(
        [
            "wheelfarm",
            "build",
            str(recipe),
            "--version",
            version,
            "--python",
            "3.11",
            "--target",
            TARGET,
            "--out",
            str(tmp_path / "out"),
            "--log-dir",
            str(tmp_path / "logs"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.stdout, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    log = Path(result["log"])
    assert result["status"] == "tested", f"{result['message']}\n{log.read_text()[-4000:]}"
    assert proc.returncode == 0
    assert result["sdist_sha256"] == sha256  # the pinned sdist, verified against PyPI's hash
    wheel = Path(result["wheel"])
    _, wheel_version, _, tags = parse_wheel_filename(wheel.name)
    assert str(wheel_version) == version
    assert {t.platform for t in tags} >= {TARGET}
    assert all(t.interpreter == "cp311" for t in tags)
    names = zipfile.ZipFile(wheel).namelist()
    for lib in grafted:
        assert any(lib in Path(n).name for n in result["grafted"]), result["grafted"]
        assert any(".libs/" in n and Path(n).name.startswith(lib) for n in names), names
    if want := PARITY_TESTS.get(project):
        assert result["parity"].startswith("matched") and want in result["parity"], result["parity"]


MACOS_TARGET = "macosx_11_0_arm64"
# recipe, project, version, python, sdist sha256 (PyPI), libraries delocate must graft into .dylibs/
MACOS = [
    ("macos/uamqp", "uamqp", "1.5.3", "3.10", "82e85f38cbdd742e04fa83a6be9786f06b1711fa8b7121d576d8f7c3c7c5d95b", ("libssl", "libcrypto")),
    ("crcmod", "crcmod", "1.7", "3.11", "dc7051a0db5f2bd48665a990d3ec1cc305a466a77358ca4492826f41f283601e", ()),
    ("pyrsistent", "pyrsistent", "0.16.1", "3.11", "aa2ae1c2e496f4d6777f869ea5de7166a8ccb9c2e06ebcf6c7ff1b670c98c5ef", ()),
    ("python-levenshtein", "python-levenshtein", "0.12.2", "3.11", "dc2395fbd148a1ab31090dd113c366695934b9e85fe5a4b2a032745efd0346f6", ()),
]  # fmt: skip


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "project", "version", "python", "sha256", "grafted"),
    MACOS,
    ids=[m[1] for m in MACOS],
)
def test_macos_recipe_builds_checked_not_run(
    recipe: str,
    project: str,
    version: str,
    python: str,
    sha256: str,
    grafted: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from builder.check import check_wheel

    monkeypatch.setenv("WHEELFARM_DATA", str(tmp_path / "data"))
    proc = subprocess.run(
        [
            "wheelfarm",
            "build",
            str(RECIPES / f"{recipe}.toml"),
            "--version",
            version,
            "--python",
            python,
            "--target",
            MACOS_TARGET,
            "--out",
            str(tmp_path / "out"),
            "--log-dir",
            str(tmp_path / "logs"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.stdout, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    log = Path(result["log"])
    # nothing here runs Mach-O: "checked, not run" with the reason, never "tested"
    assert result["status"] == "checked-not-run", f"{result['message']}\n{log.read_text()[-4000:]}"
    assert result["message"] == "checked, not run: no macOS to run on"
    assert proc.returncode == 0
    assert result["sdist_sha256"] == sha256
    wheel = Path(result["wheel"])
    _, wheel_version, _, tags = parse_wheel_filename(wheel.name)
    assert str(wheel_version) == version
    assert {str(t) for t in tags} == {
        f"cp{python.replace('.', '')}-cp{python.replace('.', '')}-{MACOS_TARGET}"
    }
    report = check_wheel(wheel)
    assert report.ok and not [f for f in report.findings if f.severity == "error"]
    machos = [b for b in report.binaries if b.format == "Mach-O"]
    assert machos and all(b.archs == {"arm64"} for b in machos)
    assert len(report.evidence) == len(machos)
    assert all("page hashes" in e and "(all found)" in e for e in report.evidence), report.evidence
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("-darwin.so") for n in names)
    for lib in grafted:
        assert any("/.dylibs/" in n and Path(n).name.startswith(lib) for n in names), names
