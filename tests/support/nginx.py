"""Debian's nginx for the tests and benchmarks: a main configuration of its own (pid, logs and temp
folders in a prefix folder) around a server block, started in the foreground on a loopback port."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPORT_CONF = ROOT / "deploy" / "nginx" / "wheelfarm-export.conf"
BALANCER_CONF = ROOT / "deploy" / "nginx" / "wheelfarm-balancer.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def main_conf(prefix: Path, http_body: str, workers: int = 1) -> Path:
    """Write `prefix/nginx.conf` with `http_body` inside `http {}`; return its path."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the temp folders
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes {workers};\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log {prefix}/access.log;\n"
        f"  client_body_temp_path {prefix}/tmp;\n  proxy_temp_path {prefix}/tmp;\n"
        f"  fastcgi_temp_path {prefix}/tmp;\n  uwsgi_temp_path {prefix}/tmp;\n"
        f"  scgi_temp_path {prefix}/tmp;\n{http_body}\n}}\n"
    )
    return conf


def export_conf(
    prefix: Path, root: Path, port: int, *, access_log: bool = True, workers: int = 1
) -> Path:
    """The shipped export configuration with its `listen` and `root` set for this run."""
    server = EXPORT_CONF.read_text()
    assert "listen 80;" in server and "root /srv/wheelfarm/export;" in server
    # The root, and the names map the export writes there (included by the same path).
    server = server.replace("listen 80;", f"listen 127.0.0.1:{port};").replace(
        "/srv/wheelfarm/export", str(root)
    )
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "export.conf").write_text(server)
    body = f"  include {prefix}/export.conf;"
    if not access_log:
        body = "  access_log off;\n" + body
    return main_conf(prefix, body, workers)


def balancer_conf(prefix: Path, port: int, backends: list[str], workers: int = 1) -> Path:
    """The shipped balancer configuration over `backends` ("127.0.0.1:PORT"), listening on `port`."""
    server = BALANCER_CONF.read_text()
    shipped = "    server 127.0.0.1:8081;\n    server 127.0.0.1:8082;\n"
    assert shipped in server and "listen 80;" in server
    servers = "".join(f"    server {b};\n" for b in backends)
    server = server.replace(shipped, servers).replace("listen 80;", f"listen 127.0.0.1:{port};")
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "balancer.conf").write_text(server)
    return main_conf(prefix, f"  access_log off;\n  include {prefix}/balancer.conf;", workers)


def command(conf: Path) -> list[str]:
    return [NGINX, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]
