"""auto: the library's own build system, read from its source tree, for entries that the resolver
writes without build knowledge (knowledge.toml): configure (autotools, in the tree or its src/),
then CMake, meson, OpenSSL's Configure, a plain Makefile. A library with both a configure script
and a CMakeLists.txt is built with configure, as Debian builds most of them."""

from __future__ import annotations

from pathlib import Path

from builder.build.natives import autotools, cmake, make, meson, openssl
from builder.build.natives.base import BuildContext, BuildSystem, NativeBuildError, ensure_host

# (file that marks the build system, its module), in the order tried
MARKERS = (
    ("configure.ac", autotools),
    ("configure.in", autotools),
    ("CMakeLists.txt", cmake),
    ("meson.build", meson),
    ("Configure", openssl),  # OpenSSL's perl script; checked after configure(.ac) on purpose
    ("Makefile", make),
    ("GNUmakefile", make),
)


def detect(src: Path) -> BuildSystem:
    """The build system of a source tree (NativeBuildError naming the tree when none is known)."""
    if (src / "configure").is_file() and not (src / "Configure").is_file():
        return autotools.SYSTEM
    for marker, module in MARKERS:
        if (src / marker).is_file():
            return module.SYSTEM
    if autotools.configure_dir(src) != src:  # krb5: src/configure.ac
        return autotools.SYSTEM
    raise NativeBuildError(
        f"{src}: no build system found (looked for configure, configure.ac, CMakeLists.txt, "
        "meson.build, Configure, Makefile): give the [[native]] entry a build-system"
    )


def build(ctx: BuildContext) -> None:
    system = detect(ctx.source)
    ctx.run.note(f"  build-system auto: {system.name} (from the source tree)")
    ensure_host(system.host_packages, ctx)
    system.build(ctx)


SYSTEM = BuildSystem("auto", build, host_packages=("make",))
