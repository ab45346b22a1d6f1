"""meson: `meson setup --cross-file` (generated: the zig wrappers, needs_exe_wrapper, pkg-config
searching the earlier prefixes only), ninja, `meson install` with DESTDIR."""

from __future__ import annotations

import shutil

from builder.build.natives.base import BuildContext, BuildSystem
from builder.build.toolchain.meson import write_cross_file


def build(ctx: BuildContext) -> None:
    src, run = ctx.source, ctx.run
    pc = [d for r in ctx.roots for d in (r / "lib" / "pkgconfig", r / "share" / "pkgconfig")]
    cross = write_cross_file(
        ctx.env, ctx.arch, ctx.work, [d for d in pc if d.is_dir()], ctx.work / "no-pkgconfig"
    )
    out = ctx.work / "_build"
    run(
        [
            "meson",
            "setup",
            str(out),
            str(src),
            f"--cross-file={cross}",
            f"--prefix={ctx.final}",
            "--libdir=lib",
            "--buildtype=release",
            "-Ddefault_library=both",
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
        },
    )
    run(["ninja", "-C", str(out)], src)
    run(["meson", "install", "-C", str(out), "--no-rebuild"], src, {"DESTDIR": str(ctx.stage)})


SYSTEM = BuildSystem("meson", build, host_packages=("meson", "ninja-build", "pkg-config"))
