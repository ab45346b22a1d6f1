"""autotools: `./configure --host=<triple>` (autoreconf -fi first when there is no configure), make,
make install DESTDIR=..."""

from __future__ import annotations

from builder.build.natives.base import BuildContext, BuildSystem, ensure_host, jobs


def build(ctx: BuildContext) -> None:
    src, run = ctx.source, ctx.run
    if not (src / "configure").exists():
        ensure_host(["autoconf", "automake", "libtool"], ctx)
        run(["autoreconf", "-fi"], src)
    run(
        [
            "./configure",
            f"--host={ctx.host_triple}",
            "--build=x86_64-linux-gnu",
            f"--prefix={ctx.final}",
            "--libdir=" + str(ctx.final / "lib"),
            *ctx.spec.args,
        ],
        src,
    )
    run(["make", "-j", jobs()], src)
    run(["make", "install", ctx.dest_arg], src)


SYSTEM = BuildSystem("autotools", build, host_packages=("make", "pkg-config"))
