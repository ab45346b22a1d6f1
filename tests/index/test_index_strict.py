"""`wheelfarm serve --strict`: the wheel checker gates uploads (422 with the findings)."""

from __future__ import annotations

from pathlib import Path

import httpx
from support.index_server import create_token, start_server, twine_upload
from support.wheels import assemble_wheel

PURE = {"demo/__init__.py": b"VALUE = 1\n"}


def test_strict_index_refuses_a_lying_wheel_with_its_findings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_token(data, "ci")
    server = start_server(data, workers=1, strict=True)
    try:
        (tmp_path / "liar").mkdir()
        (tmp_path / "honest").mkdir()
        # A native executable inside a py3-none-any wheel: installs everywhere, runs on x86_64 only.
        liar = assemble_wheel(
            tmp_path / "liar", "py3-none-any", {**PURE, "demo/tool": Path("/bin/true").read_bytes()}
        )
        honest = assemble_wheel(tmp_path / "honest", "py3-none-any", PURE, name="honest")
        refused = twine_upload(server.url, token, liar)
        assert refused.returncode != 0
        assert "422" in refused.stderr + refused.stdout
        assert "WF003-native-in-pure-wheel" in refused.stderr + refused.stdout
        raw = httpx.post(
            server.url + "/legacy/",
            auth=("__token__", token),
            data={":action": "file_upload", "protocol_version": "1"},
            files={"content": (liar.name, liar.read_bytes())},
        )
        assert raw.status_code == 422 and "demo/tool" in raw.text  # every finding, by file
        assert httpx.get(server.url + "/simple/demo/").status_code == 404  # nothing stored
        accepted = twine_upload(server.url, token, honest)
        assert accepted.returncode == 0, accepted.stderr
        assert httpx.get(server.url + "/simple/honest/").status_code == 200
    finally:
        server.stop()


def _bomb_wheel(out: Path) -> Path:
    """A valid manylinux wheel plus a member of 512 MiB (an ELF header, then zeros) in 0.5 MB."""
    import zipfile

    out.mkdir()
    wheel = assemble_wheel(out, "cp311-cp311-manylinux_2_17_x86_64", PURE, name="bomb-demo")
    with zipfile.ZipFile(wheel, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        info = zipfile.ZipInfo("demo/_bomb.so", date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as member:
            member.write(b"\x7fELF\x02\x01\x01" + bytes(9))
            zeros = bytes(8 << 20)
            for _ in range(64):
                member.write(zeros)
    return wheel


def test_checker_refuses_a_decompression_bomb_without_inflating_it(tmp_path: Path) -> None:
    """Before the fix the checker inflated, hashed and spilled the 512 MiB member (under the
    server's one-at-a-time lock); now the declared size and ratio refuse it as WF012."""
    from builder.check import check_wheel

    wheel = _bomb_wheel(tmp_path / "bomb")
    assert wheel.stat().st_size < 1 << 20
    report = check_wheel(wheel)
    assert not report.ok
    assert [(f.rule, f.path) for f in report.findings] == [("WF012-zip-bomb", "demo/_bomb.so")]
    assert "200:1" in report.findings[0].message

    data = tmp_path / "data"
    token = create_token(data, "ci")
    server = start_server(data, workers=1, strict=True)
    try:
        refused = twine_upload(server.url, token, wheel)
        assert refused.returncode != 0
        assert "422" in refused.stderr + refused.stdout
        assert "WF012-zip-bomb" in refused.stderr + refused.stdout
    finally:
        server.stop()
