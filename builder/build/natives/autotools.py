"""autotools: `./configure --host=<triple>` (autoreconf -fi first when there is no configure), make,
make install DESTDIR=...; a configure older than its inputs is marked current instead."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from builder.build.natives.base import BuildContext, BuildSystem, ensure_host, jobs

# What configure and the Makefile.in files are generated from: when a patch (Debian's quilt series)
# touched one of them, make would rerun aclocal/automake itself, with whatever the host has (exit 127
# without them, or autoheader failing on a hand-kept config.h.in: cups).
INPUTS = ("configure.ac", "configure.in", "acinclude.m4", "aclocal.m4", "Makefile.am")
# What configure cannot test when cross-compiling to Linux with glibc (see the file)
GLIBC_SITE = Path(__file__).with_name("config.site")


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


HOST_MISC = Path("/usr/share/misc")  # autotools-dev's current config.sub and config.guess


def refresh_config_scripts(src: Path, triple: str, ctx: BuildContext) -> list[Path]:
    """Replace config.sub/config.guess copies too old to know `triple` (db5.3's from 2010 predates
    aarch64) with the host's current ones, as Debian's dh_update_autotools_config does."""
    stale = []
    for sub in sorted({*src.glob("config.sub"), *src.glob("*/config.sub")}):
        proc = subprocess.run(["sh", sub.name, triple], cwd=sub.parent, capture_output=True)
        if proc.returncode != 0:
            stale.append(sub)
    if stale:
        ensure_host(["autotools-dev"], ctx)
        for sub in stale:
            for name in ("config.sub", "config.guess"):
                if (sub.parent / name).exists():
                    shutil.copy2(HOST_MISC / name, sub.parent / name)
    return stale


def build(ctx: BuildContext) -> None:
    src, run = configure_dir(ctx.source), ctx.run
    for stale in refresh_config_scripts(ctx.source, ctx.host_triple, ctx):
        run.note(f"  {stale} did not know {ctx.host_triple}: replaced by {HOST_MISC}'s")
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
        # macOS: Apple's libc, for which these glibc answers do not hold
        None if ctx.macos else {"CONFIG_SITE": str(GLIBC_SITE)},
    )
    run(["make", "-j", jobs()], src)
    run(["make", "install", ctx.dest_arg], src)


# flex and bison: configure refuses to go on without them in libraries that generate parsers
# (pcsc-lite: "no lex or flex found"), as Debian's Build-Depends would have installed them
SYSTEM = BuildSystem("autotools", build, host_packages=("make", "pkg-config", "flex", "bison"))
