"""Tiny projects the tests build themselves: sdists and wheels with and without C extensions.

Nothing here depends on PyPI: each project is written from scratch into a temporary folder.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

C_SOURCE = textwrap.dedent(
    """
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>
    #ifndef WF_EXTRA_METHODS
    #define WF_EXTRA_METHODS
    #endif

    /* A real call into compiled code: the sum of 1..n, and the machine it was compiled for. */
    static PyObject *triangle(PyObject *self, PyObject *args) {
        long long n, total = 0;
        if (!PyArg_ParseTuple(args, "L", &n)) return NULL;
        for (long long i = 1; i <= n; i++) total += i;
        return PyLong_FromLongLong(total);
    }

    static PyObject *machine(PyObject *self, PyObject *noargs) {
    #if defined(__aarch64__)
        return PyUnicode_FromString("aarch64");
    #elif defined(__x86_64__)
        return PyUnicode_FromString("x86_64");
    #else
        return PyUnicode_FromString("other");
    #endif
    }

    static PyMethodDef methods[] = {
        {"triangle", triangle, METH_VARARGS, "Sum of 1..n."},
        {"machine", machine, METH_NOARGS, "The architecture this module was compiled for."},
        WF_EXTRA_METHODS
        {NULL, NULL, 0, NULL},
    };

    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

    PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
    """
)


def write_project(
    root: Path,
    name: str,
    version: str = "1.0.0",
    *,
    c_extension: bool = False,
    requires_python: str | None = None,
    extra_c: str = "",
    prelude_c: str = "",
    libraries: Sequence[str] = (),
    pure_fallback: bool = False,
    package_data: dict[str, bytes] | None = None,
    setup_prelude: str = "",
) -> Path:
    """Write a setuptools project `name` into root/<name>-<version>/ and return that folder.

    The import package is the normalized name with dashes as underscores. With `c_extension` it has a
    `_native` extension module exposing triangle(n) and machine(). `prelude_c` goes right after the
    includes (it may `#define WF_EXTRA_METHODS` entries for the method table), `libraries` are linked
    into the extension, `pure_fallback` makes setup.py swallow a failed extension build and produce a
    pure wheel (as markupsafe does), `package_data` adds files to the package, `setup_prelude` is
    Python that setup.py runs first (what an sdist's own code may do during a build).
    """
    pkg = canonicalize_name(name).replace("-", "_")
    src = root / f"{pkg}-{version}"
    (src / pkg).mkdir(parents=True)
    init = f'__version__ = "{version}"\n'
    if c_extension:
        init += "from ._native import machine, triangle  # noqa: F401\n"
        head, sep, rest = C_SOURCE.partition("#ifndef WF_EXTRA_METHODS")
        (src / pkg / "_native.c").write_text(head + prelude_c + "\n" + sep + rest + extra_c)
        if pure_fallback:
            init = f'__version__ = "{version}"\n'
    (src / pkg / "__init__.py").write_text(init)
    for rel, data in (package_data or {}).items():
        (src / pkg / rel).write_bytes(data)
    ext = (
        f'ext_modules=[Extension("{pkg}._native", ["{pkg}/_native.c"], libraries={list(libraries)!r})],'
        if c_extension
        else ""
    )
    rp = f"python_requires={requires_python!r}," if requires_python else ""
    pd = f"package_data={{{pkg!r}: {sorted(package_data)!r}}}," if package_data else ""
    call = f"setup(name={name!r}, version={version!r}, packages=[{pkg!r}], {pd} {rp}"
    if pure_fallback:
        body = f"try:\n    {call} {ext})\nexcept BaseException:\n    {call})\n"
    else:
        body = f"{call} {ext})\n"
    (src / "setup.py").write_text(
        "from setuptools import Extension, setup\n" + setup_prelude + "\n" + body
    )
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    return src


def make_sdist(out: Path, name: str, version: str = "1.0.0", **kwargs) -> Path:
    """Build a PEP 625 sdist of a fresh project into `out` and return its path."""
    work = out / ".src"
    work.mkdir(parents=True, exist_ok=True)
    src = write_project(work, name, version, **kwargs)
    before = set(out.glob("*.tar.gz"))
    _run_build(src, out, "--sdist")
    (sdist,) = set(out.glob("*.tar.gz")) - before
    assert tarfile.is_tarfile(sdist), sdist
    return sdist


def make_wheel(out: Path, name: str, version: str = "1.0.0", **kwargs) -> Path:
    """Build a wheel of a fresh project (for the host platform if it has a C extension)."""
    work = out / ".src"
    work.mkdir(parents=True, exist_ok=True)
    src = write_project(work, name, version, **kwargs)
    before = set(out.glob("*.whl"))
    _run_build(src, out, "--wheel")
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel


def _run_build(src: Path, out: Path, kind: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", kind, "--outdir", str(out), str(src)],
        check=True,
        capture_output=True,
    )


def make_dummy_wheel(
    out: Path,
    name: str,
    version: str = "1.0.0",
    *,
    tag: str = "py3-none-any",
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    requires_python: str | None = None,
    payload: bytes = b"",
) -> Path:
    """A small but valid wheel written directly with zipfile (no build backend: fast enough for
    thousands). `metadata_name`/`metadata_version` make METADATA disagree with the filename."""
    from support.wheels import assemble_wheel

    dist = canonicalize_name(name).replace("-", "_")
    out.mkdir(parents=True, exist_ok=True)
    init = f'__version__ = "{version}"\n'.encode() + payload
    return assemble_wheel(
        out,
        tag,
        {f"{dist}/__init__.py": init},
        name=name,
        version=version,
        metadata_name=metadata_name,
        metadata_version=metadata_version,
        requires_python=requires_python,
    )


GENERATOR_C = textwrap.dedent(
    """
    /* Run during the build: writes a header describing the machine it runs on. */
    #include <stdio.h>
    #include <sys/utsname.h>
    int main(void) {
        struct utsname u;
        if (uname(&u) != 0) return 1;
        printf("#define GEN_MACHINE \\"%s\\"\\n", u.machine);
        return 0;
    }
    """
)

GEN_MODULE_C = textwrap.dedent(
    """
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>
    #include "gen_table.h"

    /* The machine the build-time generator ran on (it ran, so it was native or emulated). */
    static PyObject *generated_on(PyObject *self, PyObject *noargs) {
        return PyUnicode_FromString(GEN_MACHINE);
    }
    static PyMethodDef methods[] = {
        {"generated_on", generated_on, METH_NOARGS, "Where the generator ran."},
        {NULL, NULL, 0, NULL},
    };
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gen", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__gen(void) { return PyModule_Create(&module); }
    """
)

GENERATOR_SETUP = textwrap.dedent(
    """
    import os
    import subprocess

    from setuptools import Extension, setup
    from setuptools.command.build_ext import build_ext


    class GeneratingBuildExt(build_ext):
        # Like autoconf run-tests and code generators built from the package's own sources: compile
        # a program with the build's compiler and RUN it. A cross compiler's output cannot run here.
        def build_extensions(self):
            os.makedirs(self.build_temp, exist_ok=True)
            objs = self.compiler.compile(["gen/generator.c"], output_dir=self.build_temp)
            self.compiler.link_executable(objs, "generator", output_dir=self.build_temp)
            exe = os.path.abspath(os.path.join(self.build_temp, "generator"))
            header = subprocess.check_output([exe], text=True)
            include = os.path.join(self.build_temp, "generated")
            os.makedirs(include, exist_ok=True)
            with open(os.path.join(include, "gen_table.h"), "w") as fh:
                fh.write(header)
            for ext in self.extensions:
                ext.include_dirs.append(include)
            super().build_extensions()


    setup(
        name={name!r},
        version={version!r},
        packages=[{pkg!r}],
        ext_modules=[
            Extension("{pkg}._native", ["{pkg}/_native.c"]),
            Extension("{pkg}._gen", ["{pkg}/_gen.c"]),
        ],
        cmdclass={{"build_ext": GeneratingBuildExt}},
    )
    """
)


def make_generator_sdist(out: Path, name: str, version: str = "1.0.0") -> Path:
    """An sdist whose build compiles and runs a generator program (`<pkg>._gen.generated_on()`
    returns the machine it ran on), besides the usual `<pkg>._native`: cross-compiling it fails
    unless the host runs aarch64 programs, a native or emulated build succeeds."""
    work = out / ".src"
    work.mkdir(parents=True, exist_ok=True)
    src = write_project(work, name, version, c_extension=True)
    pkg = canonicalize_name(name).replace("-", "_")
    (src / "gen").mkdir()
    (src / "gen" / "generator.c").write_text(GENERATOR_C)
    (src / pkg / "_gen.c").write_text(GEN_MODULE_C)
    (src / "setup.py").write_text(GENERATOR_SETUP.format(name=name, version=version, pkg=pkg))
    (src / "MANIFEST.in").write_text("include gen/*.c\n")
    before = set(out.glob("*.tar.gz"))
    _run_build(src, out, "--sdist")
    (sdist,) = set(out.glob("*.tar.gz")) - before
    return sdist


MESON_BUILD = """\
project('{name}', 'c', version: '{version}')
py = import('python').find_installation(pure: false)
py.extension_module('_native', '{pkg}/_native.c', install: true, subdir: '{pkg}')
py.install_sources('{pkg}/__init__.py', subdir: '{pkg}')
"""


def make_meson_sdist(out: Path, name: str, version: str = "1.0.0") -> Path:
    """A meson-python sdist (the `_native` extension of write_project, built by meson), written as
    a PEP 625 tarball directly: making it with its own backend would need meson-python here."""
    work = out / ".src"
    work.mkdir(parents=True, exist_ok=True)
    src = write_project(work, name, version, c_extension=True)
    pkg = canonicalize_name(name).replace("-", "_")
    (src / "setup.py").unlink()
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["meson-python>=0.15"]\nbuild-backend = "mesonpy"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
    )
    (src / "meson.build").write_text(MESON_BUILD.format(name=name, version=version, pkg=pkg))
    (src / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    base = f"{pkg}-{version}"
    sdist = out / f"{base}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname=base)
    return sdist
