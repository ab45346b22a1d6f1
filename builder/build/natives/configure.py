"""configure: a hand-written `./configure` that is not autotools (zlib's), then make, make install.

No `--host`/`--build` (such scripts refuse unknown options): the cross compiler and flags reach it
through CC, AR, CFLAGS in the environment; it gets `--prefix` and `--libdir` only.
"""

from __future__ import annotations

from builder.build.natives.base import BuildContext, BuildSystem, jobs


def build(ctx: BuildContext) -> None:
    src, run, final = ctx.source, ctx.run, ctx.final
    run(["./configure", f"--prefix={final}", f"--libdir={final / 'lib'}", *ctx.spec.args], src)
    run(["make", "-j", jobs()], src)
    run(["make", "install", ctx.dest_arg], src)


SYSTEM = BuildSystem("configure", build, host_packages=("make",))
