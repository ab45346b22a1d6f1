"""autotools: `./configure --host=<triple>` (autoreconf -fi first when there is no configure), make,
make install DESTDIR=...; a configure older than its inputs is marked current instead."""

from __future__ import annotations

from pathlib import Path

from builder.build.natives.base import BuildContext, BuildSystem, ensure_host, jobs

# What configure and the Makefile.in files are generated from: when a patch (Debian's quilt series)
# touched one of them, make would rerun aclocal/automake itself, with whatever the host has (exit 127
# without them, or autoheader failing on a hand-kept config.h.in: cups).
INPUTS = ("configure.ac", "configure.in", "acinclude.m4", "aclocal.m4", "Makefile.am")


def needs_autoreconf(src: Path) -> bool:
    """No configure, or one older than an input it is generated from (patched after release)."""
    configure = src / "configure"
    if not configure.exists():
        return True
    made = configure.stat().st_mtime
    inputs = [src / n for n in INPUTS] + list(src.glob("m4/*.m4")) + list(src.glob("*/Makefile.am"))
    return any(p.exists() and p.stat().st_mtime > made for p in inputs)


def configure_dir(top: Path) -> Path:
    """Where configure (or configure.ac) is: the top of the tree, else the one subfolder that has
    it (krb5 keeps its whole build under src/)."""
    marks = ("configure", "configure.ac", "configure.in")
    if any((top / m).exists() for m in marks):
        return top
    found = sorted({p.parent for m in marks for p in top.glob(f"*/{m}")})
    preferred = [d for d in found if d.name in ("src", "source")]
    return preferred[0] if preferred else found[0] if len(found) == 1 else top


GENERATED = ("aclocal.m4", "configure", "config.h.in", "Makefile.in")


def mark_generated_current(src: Path) -> list[Path]:
    """Touch the release's generated files (aclocal.m4 first, as automake's own order) so that make
    builds with the shipped configure instead of regenerating it; return what was touched."""
    touched = []
    for name in GENERATED:
        for path in sorted([src / name, *src.glob(f"**/{name}")]):
            if path.is_file() and path not in touched:
                path.touch()
                touched.append(path)
    return touched


def build(ctx: BuildContext) -> None:
    src, run = configure_dir(ctx.source), ctx.run
    if not (src / "configure").exists():
        ensure_host(["autoconf", "automake", "libtool"], ctx)
        run(["autoreconf", "-fi"], src)
    elif needs_autoreconf(src):
        touched = mark_generated_current(src)
        run.note(
            f"  configure is older than its patched inputs: {len(touched)} generated files kept"
        )
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
