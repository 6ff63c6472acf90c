"""The environment is read at the edge (cli/run_env.py) and reaches the engine as explicit options."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cachemigrate.cli import run_env
from cachemigrate.engine.capabilities import TargetCaps
from cachemigrate.engine.spec import PipelineOptions, S3Settings
from cachemigrate.engine.transform import Transformer
from cachemigrate.formats.rdb import walk as c_walk
from cachemigrate.formats.rdb.model import RdbHeader

SRC = Path(__file__).resolve().parents[3] / "src" / "cachemigrate"


def test_s3_settings_from_our_and_aws_variables() -> None:
    assert run_env.s3_settings({}) == S3Settings()
    env = {"AWS_ENDPOINT_URL": "http://aws", "AWS_DEFAULT_REGION": "eu-1", "AWS_ACCESS_KEY_ID": "ak",
           "AWS_SECRET_ACCESS_KEY": "sk", "AWS_SESSION_TOKEN": "tok", "CACHEMIGRATE_S3_PATH_STYLE": "True"}
    assert run_env.s3_settings(env) == S3Settings("http://aws", "eu-1", "ak", "sk", "tok", path_style=True)
    ours = {**env, "CACHEMIGRATE_S3_ENDPOINT_URL": "http://obs", "CACHEMIGRATE_S3_REGION": "cn-north-4",
            "CACHEMIGRATE_S3_ACCESS_KEY_ID": "ak2", "CACHEMIGRATE_S3_SECRET_ACCESS_KEY": "sk2"}
    got = run_env.s3_settings(ours)
    assert (got.endpoint_url, got.region, got.access_key_id, got.secret_access_key) == (
        "http://obs", "cn-north-4", "ak2", "sk2")
    assert "sk2" not in repr(got) and "tok" not in repr(got)  # keys never reach a log line


@pytest.mark.parametrize(("value", "walker"), [(None, True), ("", True), ("0", True), ("1", False),
                                               ("yes", False), ("TRUE", False)])
def test_pure_python_switch(value: str | None, walker: bool) -> None:
    env = {} if value is None else {"CACHEMIGRATE_PURE_PYTHON": value}
    assert run_env.c_walker(env) is walker


def test_c_walker_option_decides_the_packed_path() -> None:
    header, target = RdbHeader("REDIS", 10), TargetCaps(rdb_version=10)
    off = Transformer(PipelineOptions(c_walker=False), header, target, packed=True)
    assert off.batch_hook is None
    on = Transformer(PipelineOptions(), header, target, packed=True)
    assert (on.batch_hook is None) is (c_walk.walk is None)


def test_nothing_below_the_edges_reads_the_environment() -> None:
    readers = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] in ("cli", "service"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and (
                isinstance(node.value, ast.Name) and node.value.id == "os"
            ):
                readers.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not readers, readers
