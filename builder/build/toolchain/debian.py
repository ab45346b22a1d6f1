"""Debian packages for other architectures, without touching the host's apt or dpkg state.

A `PrivateApt` is an apt of its own for one suite and one architecture: its own configuration, package
lists and download cache under the wheelfarm cache folder, selected with APT_CONFIG. It never runs
`dpkg --add-architecture` and never installs anything: it downloads .debs (with their whole dependency
closure, as if nothing were installed) and source packages, and `extract_debs` unpacks .debs into a
folder (a sysroot or a root filesystem). The mirror is the one the host's own apt uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from builder.common.atomic import file_lock
from builder.common.paths import cache_dir

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# sid's and testing's Release files carry Valid-Until (a week): a mirror that is a snapshot serves
# them expired. Signatures are still checked with this set; only the freshness limit is lifted.
ALLOW_EXPIRED_ENV = "WHEELFARM_DEBIAN_ALLOW_EXPIRED"
# Lists older than this are refreshed before a download; .debs already in the cache are reused.
LIST_MAX_AGE = 7 * 24 * 3600


class DebianError(RuntimeError):
    """A Debian package could not be found, downloaded or unpacked."""


def host_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive the host's apt uses ($WHEELFARM_DEBIAN_MIRROR overrides it)."""
    if env := os.environ.get("WHEELFARM_DEBIAN_MIRROR"):
        return env.rstrip("/")
    candidates: list[str] = []
    files = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or not path.name.endswith((".list", ".sources")):
            continue
        text = path.read_text(errors="replace")
        if path.name.endswith(".sources"):  # deb822: "URIs: ..." inside stanzas
            candidates += re.findall(r"^URIs:\s*(\S+)", text, flags=re.MULTILINE)
        else:  # one-line style: deb [options] URI suite components
            for line in text.splitlines():
                m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", line)
                if m:
                    candidates.append(m.group(1))
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise DebianError(
        f"no Debian archive found in {sources_dir}/sources.list(.d); "
        "set WHEELFARM_DEBIAN_MIRROR to the archive's URL"
    )


def _reclaim(partial: Path) -> None:
    """Remove `partial` when an earlier apt's _apt owns it and we may not write it, to remake it.

    Root outside a namespace may still write it (and apt hands it back); inside one it may not.
    """
    try:
        if os.access(partial, os.W_OK | os.X_OK):
            return
        partial.rmdir()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DebianError(
            f"{partial} belongs to another user and cannot be replaced ({exc.strerror}): "
            "remove it as root"
        ) from exc


class PrivateApt:
    """apt for one Debian suite and architecture, with all its state under `root`."""

    def __init__(
        self,
        suite: str,
        arch: str = "arm64",
        *,
        root: Path | None = None,
        mirror: str | None = None,
        contents: bool = False,
        trusted: bool = False,
    ) -> None:
        """`contents`: also fetch the archive's Contents index (file path -> packages), in a root
        of its own (other apts on the default root keep their lists as they are). `trusted`: an
        unsigned archive (a local one the tests build)."""
        self.suite = suite
        self.arch = arch
        self.contents = contents
        self.trusted = trusted
        default = f"{suite}-{arch}-contents" if contents else f"{suite}-{arch}"
        self.root = root or cache_dir() / "debian" / default
        self.mirror = mirror or host_mirror()
        self._config = self.root / "apt.conf"

    def _write_config(self) -> None:
        r = self.root
        for partial in (r / "state/lists/partial", r / "cache/archives/partial"):
            _reclaim(partial)
        for sub in ("state/lists/partial", "cache/archives/partial", "etc/parts", "etc/prefs"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "state/status").touch()  # nothing is installed: downloads get the whole closure
        signed = "trusted=yes" if self.trusted else f"signed-by={KEYRING}"
        (r / "sources.list").write_text(
            f"deb [{signed} arch={self.arch}] {self.mirror} {self.suite} main\n"
            f"deb-src [{signed}] {self.mirror} {self.suite} main\n"
        )
        self._config.write_text(
            "\n".join(
                [
                    f'APT::Architecture "{self.arch}";',
                    f'APT::Architectures {{ "{self.arch}"; }};',
                    f'Dir::State "{r}/state";',
                    f'Dir::State::status "{r}/state/status";',
                    f'Dir::Cache "{r}/cache";',
                    f'Dir::Etc::SourceList "{r}/sources.list";',
                    f'Dir::Etc::SourceParts "{r}/etc/parts";',
                    f'Dir::Etc::Parts "{r}/etc/parts";',
                    f'Dir::Etc::Preferences "{r}/etc/prefs/none";',
                    f'Dir::Etc::PreferencesParts "{r}/etc/prefs";',
                    # Our own state only: the host's dpkg lock is not ours to take.
                    'Debug::NoLocking "true";',
                    'APT::Install-Recommends "false";',
                    'APT::Get::Assume-Yes "true";',
                    # apt run as root fetches as _apt and hands it the partial folders. A sandboxed
                    # build (a user namespace that maps only root) can neither become _apt nor write
                    # what _apt owns, so every run fetches as the user that runs wheelfarm.
                    'APT::Sandbox::User "root";',
                    'Acquire::Languages "none";',
                    *(
                        ['Acquire::Check-Valid-Until "false";']
                        if os.environ.get(ALLOW_EXPIRED_ENV) == "1"
                        else []
                    ),
                    *(_CONTENTS_TARGET if self.contents else []),
                    "",
                ]
            )
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One apt at a time on this root (apt's own locks are off: they would be the host's)."""
        with file_lock(self.root / "lock"):
            yield

    def _apt(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "APT_CONFIG": str(self._config), "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(
            ["apt-get", "-q", *args], env=env, cwd=cwd, capture_output=True, text=True
        )
        if proc.returncode != 0:
            detail = [ln for ln in proc.stderr.splitlines() if ln.startswith(("E:", "W:"))]
            raise DebianError(
                f"apt-get {' '.join(args)} ({self.suite}/{self.arch}) failed: "
                + ("; ".join(detail) or proc.stderr.strip()[-500:])
            )
        return proc.stdout

    def update(self, max_age: float = LIST_MAX_AGE) -> None:
        """Fetch the package lists unless they are younger than `max_age` seconds."""
        with self._locked():
            self._write_config()
            stamp = self.root / "state/updated"
            if stamp.exists() and time.time() - stamp.stat().st_mtime < max_age:
                return
            try:
                self._apt("update")
            except DebianError as exc:
                if "is expired" in str(exc) and os.environ.get(ALLOW_EXPIRED_ENV) != "1":
                    raise DebianError(
                        f"{exc} (the mirror {self.mirror} serves an old snapshot of {self.suite}; "
                        f"set {ALLOW_EXPIRED_ENV}=1 to accept its signed but expired Release file)"
                    ) from None
                raise
            stamp.touch()

    def download(self, packages: Sequence[str]) -> list[Path]:
        """Download `packages` and everything they depend on; return the .deb files."""
        self.update()
        # Simulate first: "Inst NAME (VERSION ... [ARCH])" names the whole closure, downloaded now
        # or earlier (--print-uris would leave out what the cache already holds).
        plan = self._apt("install", "--simulate", *packages)
        closure = re.findall(r"^Inst (\S+) \((\S+) .*\[(\S+)\]\)", plan, flags=re.MULTILINE)
        if not closure:
            raise DebianError(f"apt-get found nothing to download for {' '.join(packages)}")
        with self._locked():
            self._apt("install", "--download-only", *packages)
        archives = self.root / "cache/archives"
        debs = [archives / f"{n}_{v.replace(':', '%3a')}_{a}.deb" for n, v, a in closure]
        missing = [d.name for d in debs if not d.exists()]
        if missing:
            raise DebianError(f"apt-get did not download {', '.join(missing)}")
        return sorted(debs)

    def contents_files(self) -> list[Path]:
        """The Contents index files apt fetched (compressed as apt keeps them)."""
        self.update()
        return sorted(
            p for p in (self.root / "state/lists").glob(f"*Contents-{self.arch}*") if p.is_file()
        )

    def find_files(self, regex: str) -> list[tuple[str, tuple[str, ...]]]:
        """(path, binary packages) of every file of the archive whose path matches `regex`
        (extended regex over Contents lines, which have no leading /: `usr/bin/pg_config`)."""
        if not self.contents:
            raise DebianError("find_files needs PrivateApt(..., contents=True)")
        found: list[tuple[str, tuple[str, ...]]] = []
        for index in self.contents_files():
            cat = subprocess.Popen(
                ["/usr/lib/apt/apt-helper", "cat-file", str(index)], stdout=subprocess.PIPE
            )
            proc = subprocess.run(
                ["grep", "-E", f"^({regex})[[:space:]]"], stdin=cat.stdout, capture_output=True
            )
            cat.wait()
            for line in proc.stdout.decode(errors="replace").splitlines():
                path, _, where = line.rstrip().rpartition(" ")
                packages = tuple(w.rsplit("/", 1)[-1] for w in where.split(","))
                found.append((path.strip(), packages))
        return found

    def source_of(self, package: str) -> str:
        """The source package a binary package is built from (its Source: field, or itself)."""
        self.update()
        out = self._cache("show", "--no-all-versions", package)
        m = re.search(r"^Source: (\S+)", out, flags=re.MULTILINE)
        return m.group(1) if m else package

    def _cache(self, *args: str) -> str:
        env = {**os.environ, "APT_CONFIG": str(self._config)}
        proc = subprocess.run(["apt-cache", *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DebianError(f"apt-cache {' '.join(args)} ({self.suite}): {proc.stderr.strip()}")
        return proc.stdout

    def source(self, package: str, dest: Path) -> Path:
        """Download and unpack the source package `package` into `dest`; return its folder."""
        self.update()
        dest.mkdir(parents=True, exist_ok=True)
        before = {p for p in dest.iterdir() if p.is_dir()}
        self._apt("source", package, cwd=dest)
        new = [p for p in dest.iterdir() if p.is_dir() and p not in before]
        if len(new) != 1:
            raise DebianError(f"apt-get source {package} unpacked {len(new)} folders in {dest}")
        return new[0]


# apt fetches the Contents index as an extra index target: apt-file's configuration.
_CONTENTS_TARGET = [
    "Acquire::IndexTargets::deb::Contents-deb {",
    '  MetaKey "$(COMPONENT)/Contents-$(ARCHITECTURE)";',
    '  ShortDescription "Contents-$(ARCHITECTURE)";',
    '  Description "$(RELEASE)/$(COMPONENT) $(ARCHITECTURE) Contents (deb)";',
    '  flatMetaKey "Contents-$(ARCHITECTURE)";',
    '  flatDescription "$(RELEASE) Contents (deb)";',
    '  PDiffs "false";',
    '  KeepCompressed "true";',
    "};",
]


def extract_debs(debs: Iterable[Path], dest: Path) -> Path:
    """Unpack .debs into `dest` as a merged-/usr tree, atomically (a folder appears whole or not)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        for deb in debs:
            proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True)
            if proc.returncode != 0:
                raise DebianError(f"dpkg-deb -x {deb}: {proc.stderr.decode().strip()}")
        merge_usr(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def merge_usr(root: Path) -> None:
    """Create the usr-merge links (bin, sbin, lib*) that Debian's .debs do not ship themselves."""
    (root / "usr").mkdir(exist_ok=True)
    for name in ("bin", "sbin", "lib", "lib64"):
        top, usr = root / name, root / "usr" / name
        if top.is_symlink():
            continue
        if top.is_dir():
            usr.mkdir(exist_ok=True)
            shutil.copytree(top, usr, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(top)
        if usr.exists() or name in ("bin", "sbin", "lib"):
            usr.mkdir(exist_ok=True)
            top.symlink_to(f"usr/{name}")


def sysroot(suite: str, packages: Sequence[str], arch: str = "arm64") -> Path:
    """A cached folder holding `packages` (and their dependencies) of `suite` for `arch`.

    The folder's name includes a hash of the package list, so a different list is a different sysroot.
    """
    key = hashlib.sha256("\n".join(sorted(packages)).encode()).hexdigest()[:12]
    dest = cache_dir() / "sysroots" / f"{suite}-{arch}-{key}"
    if (dest / ".complete").exists():
        return dest
    debs = PrivateApt(suite, arch).download(packages)
    # Build the whole tree, marker included, then rename it into place: readers never see half.
    staging = dest.with_name(dest.name + ".new")
    extract_debs(debs, staging)
    (staging / ".complete").write_text("\n".join(sorted(packages)) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    try:
        os.replace(staging, dest)
    except OSError:  # another process put a complete sysroot there first
        shutil.rmtree(staging, ignore_errors=True)
    return dest
