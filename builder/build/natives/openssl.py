"""openssl: OpenSSL's own `./Configure linux-aarch64 shared no-tests`, make build_libs, make install_dev."""

from __future__ import annotations

from builder.build.natives.base import BuildContext, BuildSystem, jobs

OPENSSL_TARGETS = {"aarch64": "linux-aarch64", "x86_64": "linux-x86_64"}


def build(ctx: BuildContext) -> None:
    src, run, env, final = ctx.source, ctx.run, ctx.env, ctx.final
    run(
        ["perl", "./Configure", OPENSSL_TARGETS[ctx.arch], "shared", "no-tests"]
        + [f"--prefix={final}", "--libdir=lib", f"--openssldir={final / 'ssl'}"]
        + [f"{k}={env[k]}" for k in ("CC", "AR", "RANLIB") if env.get(k)]
        + [f"CFLAGS={env['CFLAGS']}", *ctx.spec.args],
        src,
        {"CFLAGS": "", "CPPFLAGS": "", "LDFLAGS": env.get("LDFLAGS", "")},
    )
    run(["make", "-j", jobs(), "build_libs"], src)
    run(["make", "install_dev", ctx.dest_arg], src)


SYSTEM = BuildSystem("openssl", build, host_packages=("make", "perl"))
