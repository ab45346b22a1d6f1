"""Failure classification, on logs made here by the real tools (zig cc, gcc, ld, pkg-config, pip,
pytest, bash, Python's subprocess) failing on broken inputs."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.projects import write_project

from builder.common.classify import Failure, FailureClass, classify, classify_file, rules

ZIG = [sys.executable, "-m", "ziglang"]


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail; return its combined output (the build log)."""
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    assert proc.returncode != 0, f"{cmd} unexpectedly succeeded"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def csrc(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("csrc")
    (d / "header.c").write_text("#include <wf_missing_header.h>\nint x;\n")
    (d / "syntax.c").write_text("int f( { return 1 }\n")
    (d / "main.c").write_text("int main(void) { return 0; }\n")
    (d / "undef.c").write_text("int g(void);\nint main(void) { return g(); }\n")
    return d


def check(log: str, cls: FailureClass, transient: bool, key_fragment: str) -> Failure:
    failure = classify(log)
    assert failure.cls is cls, f"{failure} for log:\n{log}"
    assert failure.transient is transient
    assert key_fragment in failure.key_line
    assert failure.key_line in log  # the key line is a real line of the log
    return failure


# -- compilers and linkers -------------------------------------------------------------------------


@pytest.mark.parametrize("cc", ["zig", "gcc"])
def test_missing_header(csrc, cc):
    cmd = [*ZIG, "cc"] if cc == "zig" else ["gcc"]
    log = run([*cmd, "-c", "header.c", "-o", "header.o"], csrc)
    f = check(log, FailureClass.MISSING_HEADER, False, "wf_missing_header.h")
    assert f.name == "wf_missing_header.h"


def test_missing_header_cross_compiling_for_aarch64(csrc):
    log = run([*ZIG, "cc", "-target", "aarch64-linux-gnu.2.17", "-c", "header.c"], csrc)
    assert "'wf_missing_header.h' file not found" in log
    check(log, FailureClass.MISSING_HEADER, False, "wf_missing_header.h")


@pytest.mark.parametrize("cc", ["zig", "gcc"])
def test_compiler_error(csrc, cc):
    cmd = [*ZIG, "cc"] if cc == "zig" else ["gcc"]
    log = run([*cmd, "-c", "syntax.c", "-o", "syntax.o"], csrc)
    f = check(log, FailureClass.COMPILER_ERROR, False, "syntax.c:1:")
    assert f.line_number == 1


@pytest.mark.parametrize("cc", ["zig", "gcc"])
def test_missing_library(csrc, cc):
    cmd = [*ZIG, "cc"] if cc == "zig" else ["gcc"]
    log = run([*cmd, "main.c", "-lwfmissinglib", "-o", "main"], csrc)
    f = check(log, FailureClass.MISSING_LIBRARY, False, "wfmissinglib")
    assert f.name == "wfmissinglib"


def test_undefined_reference_is_a_compiler_error(csrc):
    log = run(["gcc", "undef.c", "-o", "undef"], csrc)
    check(log, FailureClass.COMPILER_ERROR, False, "undefined reference to")


def test_pkg_config_package_not_found(tmp_path):
    log = run(["pkg-config", "--cflags", "wfmissingpkg"], tmp_path, {"PKG_CONFIG_PATH": ""})
    f = check(log, FailureClass.MISSING_LIBRARY, False, "pkg-config search path")
    assert f.name == "wfmissingpkg"


def _zig_cc_wrapper(tmp_path: Path) -> Path:
    cc = tmp_path / "zigcc"
    cc.write_text(f'#!/bin/sh\nexec {sys.executable} -m ziglang cc "$@"\n')
    cc.chmod(0o755)
    return cc


@pytest.mark.parametrize(
    ("extra_c", "cls", "fragment"),
    [
        ("#include <wf_missing_header.h>\n", FailureClass.MISSING_HEADER, "wf_missing_header.h"),
        ("int broken( { }\n", FailureClass.COMPILER_ERROR, "_native.c:"),
    ],
)
def test_pip_wheel_build_log_with_zig_cc(tmp_path, extra_c, cls, fragment):
    """The whole log of `pip wheel` on a broken C extension compiled by zig cc, as a build sees it."""
    src = write_project(tmp_path, "brokenext", c_extension=True, extra_c=extra_c)
    cc = str(_zig_cc_wrapper(tmp_path))
    log = run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v", str(src)],
        tmp_path,
        {"CC": cc, "LDSHARED": f"{cc} -shared"},
    )
    assert "error: subprocess-exited-with-error" in log or "exit code" in log
    check(log, cls, False, fragment)


# -- tests, killed processes, timeouts ------------------------------------------------------------


def test_pytest_failure(tmp_path):
    (tmp_path / "test_wheel.py").write_text("def test_triangle():\n    assert 1 + 1 == 3\n")
    log = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], tmp_path)
    check(log, FailureClass.TEST_FAILURE, False, "test_wheel.py::test_triangle")


def test_unittest_failure(tmp_path):
    (tmp_path / "test_wheel.py").write_text(
        "import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n"
        "        self.assertEqual(1, 2)\n"
    )
    log = run([sys.executable, "-m", "unittest", "test_wheel"], tmp_path)
    check(log, FailureClass.TEST_FAILURE, False, "FAILED (failures=1)")


def test_killed_by_sigkill_in_a_shell(tmp_path):
    proc = subprocess.run(
        ["bash", "-c", 'sh -c "kill -9 \\$\\$"; exit 1'], capture_output=True, text=True
    )
    check(proc.stdout + proc.stderr, FailureClass.KILLED, True, "Killed")


def test_killed_subprocess_in_python(tmp_path):
    code = "import subprocess; subprocess.run(['sh', '-c', 'kill -9 $$'], check=True)"
    log = run([sys.executable, "-c", code], tmp_path)
    check(log, FailureClass.KILLED, True, "SIGKILL")


def test_timeout_in_python(tmp_path):
    code = "import subprocess; subprocess.run(['sleep', '5'], timeout=0.2)"
    log = run([sys.executable, "-c", code], tmp_path)
    check(log, FailureClass.TIMEOUT, True, "timed out after")


def test_exit_status_tells_when_the_log_does_not():
    assert classify("compiling...\n", returncode=-9).cls is FailureClass.KILLED
    assert classify("compiling...\n", returncode=137).transient
    assert classify("compiling...\n", returncode=124).cls is FailureClass.TIMEOUT


# -- network (pip against misbehaving servers on loopback) ------------------------------------------


class _Always503(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _serve_503() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Always503)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _serve_raw(mode: str) -> Iterator[int]:
    """A TCP server that resets every connection ("reset") or never answers ("hang")."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if mode == "reset":
                conn.recv(4096)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        listener.close()


def _closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port  # nothing listens there any more: connection refused


def pip_download(port: int, dest: Path) -> str:
    """pip fetching an sdist from a loopback server, one retry, one-second timeout: its log."""
    url = f"http://127.0.0.1:{port}/wfdemo-1.0.tar.gz"
    options = ["--isolated", "--no-cache-dir", "--retries", "1", "--timeout", "1", "--no-deps"]
    return run([sys.executable, "-m", "pip", "download", *options, "-d", str(dest), url], dest)


SERVERS = {
    "503": _serve_503,
    "reset": lambda: _serve_raw("reset"),
    "hang": lambda: _serve_raw("hang"),
    "refused": _closed_port,
}


@pytest.mark.parametrize(
    ("server", "fragment"),
    [
        ("503", "503 error responses"),
        ("reset", "Connection reset by peer"),
        ("hang", ""),
        ("refused", ""),
    ],
)
def test_pip_network_failures_are_transient(tmp_path, server, fragment):
    gen = SERVERS[server]()
    port = next(gen)
    try:
        log = pip_download(port, tmp_path)
    finally:
        next(gen, None)
    check(log, FailureClass.NETWORK, True, fragment)


# -- order and fallbacks ----------------------------------------------------------------------------


def test_recovered_network_warning_does_not_hide_a_compiler_error(csrc, tmp_path):
    """pip retried a download, then the build failed for good: deterministic, not network."""
    gen = _serve_raw("reset")
    port = next(gen)
    try:
        pip_log = pip_download(port, tmp_path)
    finally:
        next(gen, None)
    (warning,) = [line for line in pip_log.splitlines() if "WARNING: Retrying" in line]
    assert "Connection reset by peer" in warning
    compile_log = run([*ZIG, "cc", "-c", "syntax.c", "-o", "syntax.o"], csrc)
    check(warning + "\n" + compile_log, FailureClass.COMPILER_ERROR, False, "syntax.c:1:")


def test_unknown_failure_is_not_retried(tmp_path):
    log = run([sys.executable, "-c", "raise SystemExit('the build backend gave up')"], tmp_path)
    f = classify(log)
    assert (f.cls, f.transient, f.key_line) == (
        FailureClass.UNKNOWN,
        False,
        "the build backend gave up",
    )
    assert classify("").key_line == ""


def test_ansi_colours_are_ignored(csrc):
    log = run(["gcc", "-fdiagnostics-color=always", "-c", "header.c"], csrc)
    assert "\x1b[" in log
    f = classify(log)
    assert (f.cls, f.name) == (FailureClass.MISSING_HEADER, "wf_missing_header.h")
    assert "\x1b" not in f.key_line


def test_rules_file_is_well_formed_and_classify_file(tmp_path):
    table = rules()
    assert [r.cls for r in table] == [c for c in FailureClass if c is not FailureClass.UNKNOWN]
    log = tmp_path / "build.log"
    log.write_text(textwrap.dedent("Building...\n") + "x.c:3:1: error: expected ';'\n")
    f = classify_file(log)
    assert f.to_dict() == {
        "class": "compiler-error",
        "transient": False,
        "key_line": "x.c:3:1: error: expected ';'",
        "line_number": 2,
        "name": None,
    }
    assert str(f) == "compiler-error: x.c:3:1: error: expected ';'"
