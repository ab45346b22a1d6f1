"""manylinux / musllinux: judge a wheel's ELF files with auditwheel's own analysis and policy tables.

auditwheel unpacks the whole wheel it analyses; to keep that cheap the checker hands it a slim copy
holding only the wheel's ELF files (at their own paths, so `$ORIGIN` RPATHs to bundled libraries still
resolve) and a RECORD naming them. The architecture and libc come from the tag, so an aarch64 wheel is
judged on an x86_64 host like any other.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import zipfile
from pathlib import Path

from auditwheel.architecture import Architecture
from auditwheel.elfutils import elf_file_filter, elf_find_versioned_symbols
from auditwheel.error import InvalidLibcError, NonPlatformWheelError
from auditwheel.libc import Libc
from auditwheel.policy import Policy, WheelPolicies
from auditwheel.wheel_abi import analyze_wheel_abi, get_wheel_elfdata

from .archs import Expectation
from .findings import Finding, error, warning

log = logging.getLogger(__name__)
SYMBOLS = "WF005-linux-symbol-versions"
POLICY = "WF006-linux-policy"


def judge(
    wheel: Path,
    zf: zipfile.ZipFile,
    elf_paths: list[str],
    dist_info: str,
    expectations: list[Expectation],
) -> list[Finding]:
    """Findings for the manylinux/musllinux tags in `expectations` over the wheel's ELF files."""
    # Tags with the same libc and arch share one analysis; the most compatible claim is the one to judge.
    groups: dict[tuple[str, str], list[Expectation]] = {}
    for e in expectations:
        if e.libc and e.linux_arch:
            groups.setdefault((e.libc, e.linux_arch), []).append(e)
    findings: list[Finding] = []
    if not elf_paths or not groups:
        return findings
    with tempfile.TemporaryDirectory(prefix="wheelfarm-check-") as tmp:
        tree = Path(tmp) / "tree"
        for name in elf_paths:
            zf.extract(name, tree)
        record = tree / dist_info / "RECORD"
        record.parent.mkdir(parents=True, exist_ok=True)
        rows = io.StringIO()
        csv.writer(rows).writerows([(name, "", "") for name in elf_paths])
        record.write_text(rows.getvalue())
        slim = Path(tmp) / wheel.name
        with zipfile.ZipFile(slim, "w") as out:
            for file in sorted(p for p in tree.rglob("*") if p.is_file()):
                out.write(file, file.relative_to(tree).as_posix())
        for (libc, arch), tags in sorted(groups.items()):
            findings += _judge_group(slim, tree, Libc(libc), Architecture(arch), tags)
    return findings


def _judge_group(
    slim: Path, tree: Path, libc: Libc, arch: Architecture, tags: list[Expectation]
) -> list[Finding]:
    try:
        info = analyze_wheel_abi(
            libc, arch, slim, frozenset(), disable_isa_ext_check=False, allow_graft=False
        )
        elfdata = get_wheel_elfdata(libc, arch, slim, frozenset(), None)
    except NonPlatformWheelError:
        return []  # no ELF of this architecture: the arch rule (WF001) already says so
    except (InvalidLibcError, RuntimeError, ValueError) as exc:
        return [error(POLICY, "", f"auditwheel cannot analyse the wheel: {exc}")]
    finally:
        get_wheel_elfdata.cache_clear()  # keyed by the temporary path, which is about to vanish

    policies = info.policies
    tag = max(tags, key=lambda e: _policy_for(policies, e.tag).priority)
    target = _policy_for(policies, tag.tag)
    if target is policies.linux:
        return [warning(POLICY, "", f"auditwheel has no policy for {tag.label}; not judged")]

    findings: list[Finding] = []
    for path, elf in elf_file_filter(tree / p for p in map(Path, info.full_external_refs)):
        name = path.relative_to(tree).as_posix()
        versioned: dict[str, set[str]] = {}
        for lib, version in elf_find_versioned_symbols(elf):
            versioned.setdefault(lib, set()).add(version)
        fits = policies.versioned_symbols_policy(versioned)
        if fits < target:
            too_new = sorted(
                f"{v} ({lib})"
                for lib, vs in versioned.items()
                for v in vs
                if v.partition("_")[0] in target.symbol_versions
                and v.partition("_")[2] not in target.symbol_versions[v.partition("_")[0]]
            )
            findings.append(
                error(
                    SYMBOLS,
                    name,
                    f"{name} needs {', '.join(too_new)}, newer than {tag.label} allows "
                    f"(auditwheel: it fits {fits.name})",
                )
            )

    for fn, refs in sorted(info.full_external_refs.items()):
        name = fn.as_posix()
        ref = refs[target.name]
        if ref.libs:
            findings.append(
                error(
                    POLICY,
                    name,
                    f"{name} needs {', '.join(sorted(ref.libs))}, not in the wheel and not allowed "
                    f"by the {tag.label} policy",
                )
            )
        for lib, symbols in sorted(ref.blacklist.items()):
            findings.append(
                error(
                    POLICY,
                    name,
                    f"{name} uses {', '.join(symbols)} from {lib}, blacklisted by the {tag.label} policy",
                )
            )

    for fn, tree_ in sorted(elfdata.full_elftree.items()):
        ext = tree_.platform.extended_architecture
        if ext is not None and not policies.architecture.is_superset(ext):
            findings.append(
                error(
                    POLICY, fn.as_posix(), f"{fn.as_posix()} needs the {ext.value} instruction set"
                )
            )

    overall = min(info.overall_policy, info.ref_policy)
    if overall < target and not findings:
        findings.append(
            error(
                POLICY,
                "",
                f"auditwheel judges the wheel {overall.name}, below its tag {tag.label}",
            )
        )
    return findings


def _policy_for(policies: WheelPolicies, tag: str) -> Policy:
    try:
        return policies.get_policy_by_name(tag)
    except LookupError:
        # Without a musl on this host auditwheel loads only its newest musllinux policy; musl has no
        # symbol versions, so that one judges external libraries for every musllinux tag alike.
        if policies.libc == Libc.MUSL:
            return policies.lowest
        return policies.linux
