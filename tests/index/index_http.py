"""Raw HTTP for the index tests: hand-built multipart bodies (so that bad filenames reach the server
exactly as written) and requests that return status, headers and body whatever the status."""

from __future__ import annotations

import base64
import hashlib
import http.client
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = basic(token)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    reply = Reply(resp.status, resp.reason, resp.headers, resp.read())
    conn.close()
    return reply


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for key, value in fields.items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    for key, filename, data in files:
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def upload_form(
    path_or_name: Path | str, data: bytes | None = None, **extra: str
) -> tuple[bytes, str]:
    """The form twine sends for one file, with `extra` fields added or overriding."""
    if isinstance(path_or_name, Path):
        filename, data = path_or_name.name, path_or_name.read_bytes()
    else:
        filename = path_or_name
    assert data is not None
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        **extra,
    }
    return multipart(fields, [("content", filename, data)])


def upload(url: str, token: str | None, body: bytes, content_type: str) -> Reply:
    return request(url + "/legacy/", "POST", body, {"Content-Type": content_type}, token)


class SimplePage(HTMLParser):
    """Collects the anchors and meta tags of a PEP 503 page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self._open: dict[str, str | None] | None = None
        self._text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), ""
        elif tag == "meta":
            d = dict(attrs)
            self.meta[d.get("name") or ""] = d.get("content")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, self._text))
            self._open = None

    def by_name(self) -> dict[str, dict[str, str | None]]:
        return {text: attrs for attrs, text in self.anchors}
