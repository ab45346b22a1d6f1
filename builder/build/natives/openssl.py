"""openssl: OpenSSL's own `./Configure linux-aarch64 shared no-tests`, make build_libs, make install_dev."""

from __future__ import annotations

from builder.build.natives.base import DARWIN_OPENSSL, BuildContext, BuildSystem, jobs

OPENSSL_TARGETS = {"aarch64": "linux-aarch64", "x86_64": "linux-x86_64"}


def configure_target(ctx: BuildContext) -> str:
    """linux-aarch64, darwin64-arm64-cc (its `-arch arm64` is dropped by the zig wrappers) ..."""
    return DARWIN_OPENSSL[ctx.arch] if ctx.macos else OPENSSL_TARGETS[ctx.arch]


def build(ctx: BuildContext) -> None:
    src, run, env, final = ctx.source, ctx.run, ctx.env, ctx.final
    run(
        ["perl", "./Configure", configure_target(ctx), "shared", "no-tests"]
        + [f"--prefix={final}", "--libdir=lib", f"--openssldir={final / 'ssl'}"]
        + [f"{k}={env[k]}" for k in ("CC", "AR", "RANLIB") if env.get(k)]
        + [f"CFLAGS={env['CFLAGS']}", *ctx.spec.args],
        src,
        {"CFLAGS": "", "CPPFLAGS": "", "LDFLAGS": env.get("LDFLAGS", "")},
    )
    run(["make", "-j", jobs(), "build_libs"], src)
    run(["make", "install_dev", ctx.dest_arg], src)


SYSTEM = BuildSystem("openssl", build, host_packages=("make", "perl"))
