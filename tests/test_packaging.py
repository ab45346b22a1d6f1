"""The project's own packaging: every module it imports or runs at run time is a declared dependency,
and the import-linter layer contracts catch an import in the wrong direction."""

from __future__ import annotations

import ast
import itertools
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
OWN = {"builder", "index_server"}
# Modules a virtual environment always has: pip comes with venv, and a module run on another
# interpreter (the emulated chroot's Python, a host CPython) is not imported here.
PROVIDED = {"pip"}


def _runtime_modules() -> dict[str, set[str]]:
    """Top-level modules imported (or run with `-m`) by the shipped packages, with where."""
    found: dict[str, set[str]] = {}
    for path in [*ROOT.glob("builder/**/*.py"), *ROOT.glob("index_server/**/*.py")]:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.List | ast.Tuple):
                items = node.elts
                for a, b in itertools.pairwise(items):
                    if (
                        isinstance(a, ast.Constant)
                        and a.value == "-m"
                        and isinstance(b, ast.Constant)
                    ):
                        names.append(str(b.value))
            for name in names:
                top = name.split(".")[0]
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_runtime_import_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    dists = packages_distributions()
    missing = []
    for module, where in sorted(_runtime_modules().items()):
        if module in OWN or module in sys.stdlib_module_names or module in PROVIDED:
            continue
        owners = {canonicalize_name(d) for d in dists.get(module, [])}
        assert owners, f"{module} (imported by {sorted(where)}) is not installed at all"
        if not owners & declared:
            missing.append(f"{module} from {sorted(owners)}, used by {sorted(where)}")
    assert not missing, "run-time imports missing from [project] dependencies: " + "; ".join(
        missing
    )


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(exe), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layer_contracts_fail_on_an_import_in_the_wrong_direction(tmp_path: Path) -> None:
    for package in OWN:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    kept = _lint_imports(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr

    # The planner reaching up into the build stage, and the index into the farm: both refused.
    planner = tmp_path / "builder" / "plan" / "planner.py"
    planner.write_text(planner.read_text() + "\nfrom builder.build import pipeline  # noqa\n")
    catalog = tmp_path / "index_server" / "catalog.py"
    catalog.write_text(catalog.read_text() + "\nimport builder.farm.ledger  # noqa\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "builder.plan.planner -> builder.build.pipeline" in broken.stdout, broken.stdout
    assert "index_server.catalog -> builder.farm.ledger" in broken.stdout, broken.stdout
    assert "2 broken" in broken.stdout, broken.stdout
