"""mklove: librdkafka's own `./configure --cc=... --cxx=...` (not autotools: --host is a no-op
there), make libs, make install-subdirs."""

from __future__ import annotations

from builder.build.natives.base import BuildContext, BuildSystem, jobs


def build(ctx: BuildContext) -> None:
    src, run, env, final = ctx.source, ctx.run, ctx.env, ctx.final
    run(
        [
            "./configure",
            f"--prefix={final}",
            f"--libdir={final / 'lib'}",
            f"--cc={env['CC']}",
            f"--cxx={env.get('CXX', env['CC'])}",
            # mklove's linker script names symbols a release build leaves out; lld refuses that
            *([] if ctx.macos else ["--LDFLAGS=-Wl,--undefined-version"]),
            *ctx.spec.args,
        ],
        src,
    )
    run(["make", "-j", jobs(), "libs"], src)
    run(["make", "install-subdirs", ctx.dest_arg], src)


SYSTEM = BuildSystem("mklove", build, host_packages=("make", "python3"))
