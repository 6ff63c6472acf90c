"""Import from an S3-compatible bucket (moto server on loopback) beside REF ingest."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.cli_run import into_fresh_target
from benchmarks.refs import Timing

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(BIN / "moto_server"), "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                    "AWS_DEFAULT_REGION": "us-east-1"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def upload(self, bucket: str, key: str, path: Path) -> None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(path), bucket, key)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def import_from_bucket(work: Path, rdb: Path, keys: int, moto: MotoServer, i: int) -> Timing:
    old = {k: os.environ.get(k) for k in moto.env}
    os.environ.update(moto.env)
    try:
        return into_fresh_target(
            work, f"s3imp{i}", "cachemigrate import (s3 bucket)", keys,
            lambda url: ["import", "s3://bench/dump.rdb", "--target", url, "--s3-endpoint-url", moto.url,
                         "--quiet"],
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
