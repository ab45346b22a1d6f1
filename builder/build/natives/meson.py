"""meson: `meson setup --cross-file` (generated: the zig wrappers, needs_exe_wrapper, pkg-config
searching the earlier prefixes only), ninja, `meson install` with DESTDIR."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from builder.build.natives.base import BuildContext, BuildSystem
from builder.build.toolchain.meson import write_cross_file

# meson from PyPI, not Debian's 1.0.1: that one does not recognise zig's linker ("zig ld").
MESON_REQUIREMENTS = ("meson>=1.4", "ninja")


def meson_tools(ctx: BuildContext) -> Path:
    """The bin folder of a cached venv (of the Python running wheelfarm) with meson and ninja."""
    from builder.build.backends.cross import build_env

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return build_env(version, MESON_REQUIREMENTS, ctx.run.log).parent


def build(ctx: BuildContext) -> None:
    src, run = ctx.source, ctx.run
    tools = meson_tools(ctx)
    path = f"{tools}{os.pathsep}{ctx.env['PATH']}"
    pc = [d for r in ctx.roots for d in (r / "lib" / "pkgconfig", r / "share" / "pkgconfig")]
    cross = write_cross_file(
        ctx.env, ctx.arch, ctx.work, [d for d in pc if d.is_dir()], ctx.work / "no-pkgconfig"
    )
    out = ctx.work / "_build"
    run(
        [
            str(tools / "meson"),
            "setup",
            str(out),
            str(src),
            f"--cross-file={cross}",
            f"--prefix={ctx.final}",
            "--libdir=lib",
            "--buildtype=release",
            "-Ddefault_library=both",
            # a dependency comes from a prefix or is missing, never a subproject meson would
            # download (no network here; glib asked for pcre2's tarball): "Dependency ... not
            # found" then names it for the resolver
            "--wrap-mode=nofallback",
            *ctx.spec.args,
        ],
        src,
        # The cross file holds the target's compilers and flags; the environment's are the build
        # machine's for meson, which checks that its compiler runs programs here: the host's gcc.
        {
            "CC": shutil.which("gcc", path="/usr/bin") or "gcc",
            "CXX": shutil.which("g++", path="/usr/bin") or "g++",
            "CFLAGS": "",
            "CXXFLAGS": "",
            "CPPFLAGS": "",
            "LDFLAGS": "",
            "PATH": path,
        },
    )
    run([str(tools / "ninja"), "-C", str(out)], src, {"PATH": path})
    run(
        [str(tools / "meson"), "install", "-C", str(out), "--no-rebuild"],
        src,
        {"DESTDIR": str(ctx.stage), "PATH": path},
    )


SYSTEM = BuildSystem("meson", build, host_packages=("pkg-config",))
