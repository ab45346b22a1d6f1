"""debian-binary: Debian's arm64 packages (`source = "debian:<pkg>[,<pkg>...][@suite]"`, more in `args`)
unpacked into the prefix's include/ and lib/.

What a -dev package needs to work from a prefix, done here:
- its siblings: the runtime library of the same source package (libpq5 for libpq-dev) and the -dev
  packages it depends on (libssl-dev) with theirs; never the target system's own (glibc, gcc, ...);
- symlinks made relative inside the prefix (Debian's absolute ones would dangle, and the linker would
  then take the non-PIC .a);
- .pc files pointing into the prefix (no /usr path left);
- `*-config` scripts rewritten to the prefix, and a stand-in answering from the .pc files for a
  config tool that is an aarch64 program (pg_config), which cannot run here.
The glibc its binaries need is checked by the caller (a warning when above the target's floor).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from builder.build.natives.base import (
    DEBIAN_ARCHES,
    DEFAULT_SUITE,
    GNU_TRIPLES,
    BuildContext,
    BuildSystem,
    NativeBuildError,
)

# Source packages that make up the target system itself: never copied into a prefix.
SYSTEM_SOURCES = frozenset(
    {"glibc", "gcc-12", "gcc-13", "gcc-14", "linux", "libxcrypt", "libnsl", "libtirpc", "zlib"}
)


def _deb_field(deb: Path, field: str) -> str:
    proc = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True)
    return proc.stdout.strip()


def _source_of(deb: Path) -> str:
    """The source package of a .deb (its Source: field without a version, else its own name)."""
    src = _deb_field(deb, "Source").split(" ")[0]
    return src or deb.name.split("_", 1)[0]


def wanted_debs(closure: list[Path], named: list[str]) -> list[Path]:
    """The named packages, their sibling binaries and the -dev packages they pull in (with theirs)."""
    by_name = {d.name.split("_", 1)[0]: d for d in closure}
    source = {n: _source_of(d) for n, d in by_name.items()}
    keep_sources = {source[n] for n in named if n in source}
    keep_sources |= {s for n, s in source.items() if n.endswith("-dev")}
    keep_sources -= SYSTEM_SOURCES
    out = []
    for n, d in sorted(by_name.items()):
        if n in named or (
            source[n] in keep_sources and (n.startswith("lib") or n.endswith("-dev"))
        ):
            out.append(d)
    return out


def _map_into_prefix(path: str, final: Path, triple: str) -> str:
    """An absolute Debian path as the prefix lays it out: /usr/lib/<triple>/x -> <final>/lib/x."""
    for old, new in (
        (f"/usr/lib/{triple}", "lib"),
        (f"/lib/{triple}", "lib"),
        (f"/usr/include/{triple}", "include"),
        ("/usr/include", "include"),
        ("/usr/lib", "lib"),
        ("/usr/share", "share"),
        ("/usr/bin", "bin"),
    ):
        if path == old or path.startswith(old + "/"):
            return str(final / new) + path[len(old) :]
    return path


def relative_symlinks(stage_final: Path, final: Path, triple: str) -> None:
    """Rewrite absolute symlinks to relative ones inside the prefix."""
    for link in stage_final.rglob("*"):
        if not link.is_symlink():
            continue
        target = os.readlink(link)
        if not target.startswith("/"):
            continue
        mapped = _map_into_prefix(target, final, triple)
        if mapped == target:
            continue
        staged_target = stage_final / Path(mapped).relative_to(final)
        link.unlink()
        link.symlink_to(os.path.relpath(staged_target, link.parent))


# A Debian path where a .pc file or config script names one: after =, a quote, space, -I or -L.
_DEBIAN_PATH = re.compile(
    r"""(?:(?<=^)|(?<=[\s='"])|(?<=-I)|(?<=-L))/(?:usr/)?(?:lib|include|share|bin)(?:/[^\s'"]*)?"""
    r"""|(?:(?<=^)|(?<=[\s='"]))/usr(?=[\s'"]|$)""",
    re.MULTILINE,
)


def _into_prefix(text: str, final: Path, triple: str) -> str:
    def repl(m: re.Match[str]) -> str:
        return str(final) if m.group(0) == "/usr" else _map_into_prefix(m.group(0), final, triple)

    return _DEBIAN_PATH.sub(repl, text)


def rewrite_pc(text: str, final: Path, triple: str) -> str:
    """A Debian .pc file with every /usr path pointing into the prefix."""
    text = re.sub(r"^prefix=.*$", f"prefix={final}", text, flags=re.MULTILINE)
    return _into_prefix(text, final, triple)


def _stand_in(name: str, final: Path, modules: list[str]) -> str:
    """A config tool answering from the prefix's .pc files (for an aarch64 one that cannot run)."""
    mods = " ".join(modules)
    first = modules[0] if modules else ""
    pc = f"PKG_CONFIG_LIBDIR={final}/lib/pkgconfig:{final}/share/pkgconfig pkg-config"
    # pg_config says "PostgreSQL 15.18", and psycopg2's setup.py splits that (the word first)
    version_prefix = "PostgreSQL " if name == "pg_config" else ""
    return (
        "#!/bin/sh\n"
        f"# wheelfarm stand-in for Debian's arm64 {name}: answers from {final}\n"
        'for a in "$@"; do case "$a" in\n'
        f"  --prefix|--exec-prefix) echo {final};;\n"
        f"  --includedir|--pkgincludedir|--includedir-server) echo {final}/include;;\n"
        f"  --libdir|--pkglibdir) echo {final}/lib;;\n"
        f"  --bindir) echo {final}/bin;;\n"
        f"  --cflags|--cppflags|--includes) {pc} --cflags {mods};;\n"
        f"  --libs|--ldflags|--libs_r) {pc} --libs {mods};;\n"
        f"  --version|--modversion) printf '{version_prefix}'; {pc} --modversion {first};;\n"
        f'  *) echo "{name} (wheelfarm stand-in): $a is not answered" >&2; exit 1;;\n'
        "esac; done\n"
    )


def config_tools(stage_final: Path, final: Path, triple: str | None) -> list[str]:
    """Make the prefix's bin/*-config usable on the host: a config program built for the target
    (pg_config) becomes a stand-in answering from the prefix's .pc files; with `triple` (Debian's
    binaries), scripts are rewritten to point into the prefix. Returns the stand-ins' names."""
    bindir = stage_final / "bin"
    if not bindir.is_dir():
        return []
    modules = sorted(p.stem for p in (stage_final / "lib" / "pkgconfig").glob("*.pc"))
    stood_in = []
    for tool in sorted(bindir.iterdir()):
        if not re.search(r"[-_]config$", tool.name) or tool.is_symlink() or not tool.is_file():
            continue
        head = tool.read_bytes()[:4]
        if head.startswith(b"#!") and triple:
            text = _into_prefix(tool.read_text(errors="replace"), final, triple)
            tool.write_text(text)
        elif head == b"\x7fELF":
            tool.write_text(_stand_in(tool.name, final, modules))
            stood_in.append(tool.name)
        tool.chmod(0o755)
    return stood_in


def build(ctx: BuildContext) -> None:
    from builder.build.toolchain.debian import DebianError, PrivateApt, extract_debs

    spec, arch, final, stage_final = ctx.spec, ctx.arch, ctx.final, ctx.staged
    names, _, suite = spec.source.removeprefix("debian:").partition("@")
    packages = [n for n in names.split(",") if n] + list(spec.args)
    ctx.run.say(
        f"downloading Debian {suite or DEFAULT_SUITE} {DEBIAN_ARCHES[arch]} {' '.join(packages)}"
    )
    try:
        apt = PrivateApt(suite or DEFAULT_SUITE, DEBIAN_ARCHES[arch])
        closure = apt.download(packages)
        wanted = wanted_debs(closure, packages)
        ctx.run.note("  debian packages: " + " ".join(d.name for d in wanted))
        tree = stage_final.with_name(stage_final.name + ".deb")
        extract_debs(wanted, tree)
    except DebianError as e:
        raise NativeBuildError(f"native library {spec.name}: {e}") from e
    # The usual prefix layout (include/, lib/, bin/): Debian's multiarch folders merged into them.
    triple = GNU_TRIPLES[arch]
    copied: set[Path] = set()
    for sub, dest in (
        ("usr/include", "include"),
        (f"usr/include/{triple}", "include"),
        (f"lib/{triple}", "lib"),
        (f"usr/lib/{triple}", "lib"),
        ("usr/share", "share"),
        ("usr/bin", "bin"),
    ):
        real = (tree / sub).resolve()
        if (tree / sub).is_dir() and real not in copied:  # lib/ may be usr/lib (usr-merge)
            copied.add(real)
            shutil.copytree(tree / sub, stage_final / dest, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(stage_final / "include" / triple, ignore_errors=True)
    relative_symlinks(stage_final, final, triple)
    for pc in (stage_final / "lib" / "pkgconfig").glob("*.pc"):
        pc.write_text(rewrite_pc(pc.read_text(), final, triple))
    config_tools(stage_final, final, triple)
    shutil.rmtree(tree)


SYSTEM = BuildSystem("debian-binary", build, needs_source=False)
