"""Token files changed by several processes at once (issue 14 item 3): no token is lost and no
revoke is undone. Real processes (multiprocessing, fork) on one data folder, started together."""

from __future__ import annotations

import multiprocessing
import subprocess
from pathlib import Path

from index_server.auth import TokenStore
from index_server.storage import LocalStorage

PROCESSES = 6
PER_PROCESS = 15


def _create(data: Path, prefix: str, barrier) -> None:
    store = TokenStore(LocalStorage(data))
    barrier.wait()
    for i in range(PER_PROCESS):
        store.create(f"{prefix}-{i}")


def _revoke(data: Path, names: list[str], barrier) -> None:
    store = TokenStore(LocalStorage(data))
    barrier.wait()
    for name in names:
        store.revoke(name)


def test_concurrent_creates_and_revokes_lose_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = TokenStore(LocalStorage(data))
    doomed = [f"doomed-{i}" for i in range(PROCESSES * PER_PROCESS // 2)]
    for name in doomed:
        store.create(name)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES + 2)
    procs = [ctx.Process(target=_create, args=(data, f"p{n}", barrier)) for n in range(PROCESSES)]
    half = len(doomed) // 2
    procs += [
        ctx.Process(target=_revoke, args=(data, doomed[:half], barrier)),
        ctx.Process(target=_revoke, args=(data, doomed[half:], barrier)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    names = [t.name for t in TokenStore(LocalStorage(data)).tokens()]
    expected = {f"p{n}-{i}" for n in range(PROCESSES) for i in range(PER_PROCESS)}
    assert sorted(names) == sorted(expected), (len(names), len(expected))


def test_cli_creates_in_parallel(tmp_path: Path) -> None:
    """The same through `wheelfarm token create`, several at a time."""
    data = tmp_path / "data"
    cmds = [
        ["wheelfarm", "token", "create", f"cli-{i}", "--data", str(data), "--json"]
        for i in range(8)
    ]
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in cmds]
    assert [p.wait(timeout=120) for p in procs] == [0] * len(procs)
    names = {t.name for t in TokenStore(LocalStorage(data)).tokens()}
    assert names == {f"cli-{i}" for i in range(8)}
