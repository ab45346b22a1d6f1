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
