"""cmake: a generated toolchain file (libraries and headers searched only in the earlier prefixes),
cmake --build, cmake --install with DESTDIR."""

from __future__ import annotations

from builder.build.natives.base import BuildContext, BuildSystem, jobs


def build(ctx: BuildContext) -> None:
    src, run, env = ctx.source, ctx.run, ctx.env
    out = ctx.work / "_build"
    cppflags = env.get("CPPFLAGS", "")
    run(
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(out),
            "-G",
            "Unix Makefiles",
            f"-DCMAKE_TOOLCHAIN_FILE={ctx.toolchain_file}",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_INSTALL_PREFIX={ctx.final}",
            "-DCMAKE_INSTALL_LIBDIR=lib",
            "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
            f"-DCMAKE_C_FLAGS={env['CFLAGS']} {cppflags}".rstrip(),
            f"-DCMAKE_CXX_FLAGS={env['CXXFLAGS']} {cppflags}".rstrip(),
            *ctx.spec.args,
        ],
        src,
        {"CFLAGS": "", "CXXFLAGS": ""},  # passed above; cmake would add them twice
    )
    run(["cmake", "--build", str(out), "-j", jobs()], src)
    run(["cmake", "--install", str(out)], src, {"DESTDIR": str(ctx.stage)})


SYSTEM = BuildSystem("cmake", build, host_packages=("cmake", "make", "pkg-config"))
