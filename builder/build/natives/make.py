"""make: `make CC=... AR=... RANLIB=... CFLAGS=... PREFIX=... prefix=...`, then make install DESTDIR=..."""

from __future__ import annotations

import shutil

from builder.build.natives.base import BuildContext, BuildSystem, jobs


def build(ctx: BuildContext) -> None:
    src, run, env, final = ctx.source, ctx.run, ctx.env, ctx.final
    tools = [f"{k}={env[k]}" for k in ("CC", "CXX", "AR", "RANLIB") if env.get(k)]
    # programs a Makefile builds and runs during the build (libcap's _makenames) are the host's
    host_cc = shutil.which("gcc", path="/usr/bin") or "gcc"
    tools += [f"BUILD_CC={host_cc}", f"HOSTCC={host_cc}"]
    flags = [f"CFLAGS={env['CFLAGS']} {env.get('CPPFLAGS', '')}".rstrip()]
    where = [f"PREFIX={final}", f"prefix={final}", f"LIBDIR={final / 'lib'}"]
    run(["make", "-j", jobs(), *tools, *flags, *where, *ctx.spec.args], src)
    run(["make", "install", *tools, *flags, *where, *ctx.spec.args, ctx.dest_arg], src)


SYSTEM = BuildSystem("make", build, host_packages=("make",))
