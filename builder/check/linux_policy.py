"""manylinux / musllinux: judge a wheel's ELF files by auditwheel's policies.

The policy data (allowed symbol versions, library whitelists, symbol blacklists, priorities) and
the policy logic (`WheelPolicies`, `versioned_symbols_policy`, the dependency tree's types and path
rules) are auditwheel's; the ELF facts come from elfdyn's struct reader instead of pyelftools (see
there for why), and `external_references` repeats, for the one policy a tag names, what auditwheel's
`lddtree_external_references` computes for all of them. tests/test_check_elfdyn.py holds both equal
to auditwheel on real files. The architecture and libc come from the tag, so an aarch64 wheel is
judged on an x86_64 host like any other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePosixPath

from auditwheel.architecture import Architecture
from auditwheel.error import InvalidLibcError
from auditwheel.lddtree import LIBPYTHON_RE, DynamicExecutable
from auditwheel.libc import Libc
from auditwheel.policy import Policy, WheelPolicies
from auditwheel.tools import is_subdir

from .archs import Expectation
from .elfdyn import STT_FUNC, STT_NOTYPE, ElfFacts, ElfReadError
from .findings import Finding, error, warning
from .lddtree import Resolver, read
from .rules import BAD_BINARY

SYMBOLS = "WF005-linux-symbol-versions"
POLICY = "WF006-linux-policy"
_PYFPE = frozenset({"PyFPE_jbuf", "PyFPE_dummy", "PyFPE_counter"})


def judge(tree: Path, elf_paths: list[str], expectations: list[Expectation]) -> list[Finding]:
    """Findings for the manylinux/musllinux tags in `expectations` over the ELF files under `tree`.

    `tree` holds the wheel's ELF files at their paths in the wheel, so that `$ORIGIN` RPATHs to
    bundled libraries resolve as they will once installed.
    """
    # Tags with the same libc and arch share one analysis; the most compatible claim is the one to judge.
    groups: dict[tuple[str, str], list[Expectation]] = {}
    for e in expectations:
        if e.libc and e.linux_arch:
            groups.setdefault((e.libc, e.linux_arch), []).append(e)
    if not elf_paths or not groups:
        return []
    findings: list[Finding] = []
    files: dict[str, ElfFacts] = {}
    for name in sorted(elf_paths):
        try:
            files[name] = read(tree / name)
        except ElfReadError as exc:
            findings.append(error(BAD_BINARY, name, f"{name}: unreadable ELF tables: {exc}"))
    purelib = [n for n in files if "purelib" in PurePosixPath(n).parts[:-1]]
    if purelib:  # auditwheel refuses such a wheel outright
        return findings + [
            error(POLICY, n, f"{n} is a shared library in purelib; it belongs in platlib")
            for n in purelib
        ]
    resolver = Resolver()
    for (libc, arch), tags in sorted(groups.items()):
        findings += _judge_group(tree, files, resolver, Libc(libc), Architecture(arch), tags)
    return findings


def _judge_group(
    tree: Path,
    files: dict[str, ElfFacts],
    resolver: Resolver,
    libc: Libc,
    arch: Architecture,
    tags: list[Expectation],
) -> list[Finding]:
    policies = WheelPolicies(libc=libc, arch=arch)
    tag = max(tags, key=lambda e: _policy_for(policies, e.tag).priority)
    target = _policy_for(policies, tag.tag)
    if target is policies.linux:
        return [warning(POLICY, "", f"auditwheel has no policy for {tag.label}; not judged")]
    label = "/".join(e.label for e in tags)
    findings: list[Finding] = []
    trees: dict[str, DynamicExecutable] = {}
    for name, facts in files.items():
        try:
            exe = resolver.ldd(tree / name, facts)
            base = exe.platform.baseline_architecture
        except (InvalidLibcError, ValueError) as exc:
            findings.append(error(POLICY, name, f"{name} cannot be judged for tag {label}: {exc}"))
            continue
        if base != arch.baseline:
            continue  # another tag's file; the architecture rule reports it if it is in none
        if exe.libc is not None and exe.libc != libc:
            findings.append(
                error(
                    POLICY, name, f"{name} links against {exe.libc}, but tag {label} needs {libc}"
                )
            )
            continue
        trees[name] = exe
    extensions = {name for name in trees if _is_python_extension(name, files[name])}
    trees = _borrow_resolutions(trees, extensions, target, policies)
    # Libraries another ELF of the wheel loads were bundled by a repair; auditwheel judges their
    # instruction set through the extension that needs them, not on their own.
    needed = {lib for exe in trees.values() for lib in exe.needed}
    for name, exe in trees.items():
        facts = files[name]
        findings += _symbol_versions(name, facts, policies, target, tag)
        libs, blacklisted = external_references(exe, facts, target, policies, tree)
        if libs:
            findings.append(
                error(
                    POLICY,
                    name,
                    f"{name} needs {', '.join(sorted(libs))}, not in the wheel and not allowed "
                    f"by the {tag.label} policy",
                )
            )
        for lib, symbols in sorted(blacklisted.items()):
            findings.append(
                error(
                    POLICY,
                    name,
                    f"{name} uses {', '.join(symbols)} from {lib}, blacklisted by the {tag.label} policy",
                )
            )
        if name in extensions or PurePosixPath(name).name not in needed:
            findings += _instruction_set(name, exe, policies)
        if name in extensions and (used := sorted(_PYFPE & _undefined_code(facts))):
            findings.append(
                error(
                    POLICY,
                    name,
                    f"{name} references {', '.join(used)}, which no manylinux policy allows",
                )
            )
    return findings


def _borrow_resolutions(
    trees: dict[str, DynamicExecutable],
    extensions: set[str],
    policy: Policy,
    policies: WheelPolicies,
) -> dict[str, DynamicExecutable]:
    """auditwheel's `_fixup_elf_trees`: a bundled library finds what it needs where the resolved ELF
    that loads it found it (the loader has those loaded already, or searches that ELF's DT_RPATH).

    auditwheel takes only trees with every library found on this host as references. Here a library
    the policy whitelists also counts as found: the policy promises it on every target system, and on
    a host of another architecture (judging aarch64 wheels on x86_64) there is no libc.so.6 to find.
    """

    def settled(exe: DynamicExecutable) -> bool:
        return all(
            lib.realpath is not None or soname not in _outside((soname,), policy, policies)
            for soname, lib in exe.libraries.items()
        )

    references = [exe for exe in trees.values() if settled(exe)]
    out = dict(trees)
    for name, exe in trees.items():
        if name in extensions or settled(exe):
            continue
        loader = next(
            (
                ref
                for ref in references
                for lib in ref.libraries.values()
                if lib.realpath is not None and lib.realpath.samefile(exe.realpath)
            ),
            None,
        )
        if loader is None:
            continue
        libraries = dict(exe.libraries)
        todo = [s for s, lib in libraries.items() if lib.realpath is None]
        while todo:
            soname = todo.pop()
            if soname in loader.libraries and libraries.get(soname) != loader.libraries[soname]:
                libraries[soname] = loader.libraries[soname]
                todo += [d for d in loader.libraries[soname].needed if d not in libraries]
        out[name] = dataclasses.replace(exe, libraries=libraries)
    return out


def external_references(
    exe: DynamicExecutable,
    facts: ElfFacts,
    policy: Policy,
    policies: WheelPolicies,
    wheel_root: Path,
) -> tuple[dict[str, Path | None], dict[str, list[str]]]:
    """(libraries, blacklisted symbols): auditwheel's `ExternalReference` of `exe` for `policy`.

    Libraries are the needed ones (and what they need in turn) that the policy does not whitelist
    and that do not resolve inside the wheel; blacklisted symbols are the undefined ones the policy
    forbids from a library the file needs.
    """
    if policy == policies.linux:  # the generic linux policy allows everything
        return {}, {}

    undefined = facts.undefined | {"*"}  # "*" in a blacklist forbids the whole library
    blacklisted = {
        lib: sorted(hit)
        for lib in set(policy.blacklist) & set(exe.needed)
        if (hit := policy.blacklist[lib] & undefined)
    }
    todo, required = _outside(exe.needed, policy, policies), set()
    while todo:
        lib = todo.pop()
        required.add(lib)
        todo |= _outside(exe.libraries[lib].needed, policy, policies) - required
    libs = {
        lib: exe.libraries[lib].realpath
        for lib in required
        if not is_subdir(exe.libraries[lib].realpath, wheel_root)  # bundled, found via RPATH
    }
    return libs, blacklisted


def _outside(libs: tuple[str, ...], policy: Policy, policies: WheelPolicies) -> set[str]:
    """The libraries the policy does not provide on the target system (auditwheel's filter_libs)."""
    return {
        lib
        for lib in libs
        if "ld-linux" not in lib  # the dynamic loader is never external
        and lib not in ("ld64.so.2", "ld64.so.1")
        and not (policies.libc == Libc.ANDROID and LIBPYTHON_RE.match(lib))
        and lib not in policy.whitelist
    }


def versioned_symbols(facts: ElfFacts) -> dict[str, set[str]]:
    """{library: versions} as auditwheel's elf_find_versioned_symbols gives them (loader left out)."""
    versioned: dict[str, set[str]] = {}
    for lib, version in facts.version_needs:
        if not (lib.startswith("ld-linux") or lib in ("ld64.so.2", "ld64.so.1")):
            versioned.setdefault(lib, set()).add(version)
    return versioned


def _symbol_versions(
    name: str, facts: ElfFacts, policies: WheelPolicies, target: Policy, tag: Expectation
) -> list[Finding]:
    versioned = versioned_symbols(facts)
    fits = policies.versioned_symbols_policy(versioned)
    if not fits < target:  # Policy orders by priority with __lt__ alone
        return []
    too_new = sorted(
        f"{v} ({lib})"
        for lib, vs in versioned.items()
        for v in vs
        if v.partition("_")[0] in target.symbol_versions
        and v.partition("_")[2] not in target.symbol_versions[v.partition("_")[0]]
    )
    return [
        error(
            SYMBOLS,
            name,
            f"{name} needs {', '.join(too_new)}, newer than {tag.label} allows "
            f"(auditwheel: it fits {fits.name})",
        )
    ]


def _instruction_set(name: str, exe: DynamicExecutable, policies: WheelPolicies) -> list[Finding]:
    try:
        ext = exe.platform.extended_architecture
    except ValueError as exc:
        return [error(POLICY, name, f"{name}: {exc}")]
    if ext is not None and not policies.architecture.is_superset(ext):
        return [error(POLICY, name, f"{name} needs the {ext.value} instruction set")]
    return []


def _is_python_extension(name: str, facts: ElfFacts) -> bool:
    """Whether the file defines a module init function for its own name (auditwheel's test)."""
    module = PurePosixPath(name).name.split(".", 1)[0]
    inits = {f"PyInit_{module}", f"init{module}", f"_cffi_pypyinit_{module}"}
    return any(s.name in inits and not s.undefined and s.kind == STT_FUNC for s in facts.symbols)


def _undefined_code(facts: ElfFacts) -> set[str]:
    return {s.name for s in facts.symbols if s.undefined and s.kind in (STT_FUNC, STT_NOTYPE)}


def _policy_for(policies: WheelPolicies, tag: str) -> Policy:
    try:
        return policies.get_policy_by_name(tag)
    except LookupError:
        # Without a musl on this host auditwheel loads only its newest musllinux policy; musl has no
        # symbol versions, so that one judges external libraries for every musllinux tag alike.
        if policies.libc == Libc.MUSL:
            return policies.lowest
        return policies.linux
