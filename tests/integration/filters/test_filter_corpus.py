"""Corpus RDB files imported under filter rules: the target holds what the reference says.

A reference server loads each file Redis 7.0 loads (DEBUG RELOAD NOSAVE: Redis's own reading);
``support.filter_ref.expected`` applies the rules to what it holds; the file imported by the
pipeline under the same rules into an empty target must match, key by key (support.compare).
Both the C walker and the Python parser, with rules on names, types and a rename.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import Phase, RecordingSink
from cachemigrate.protocol.endpoint import Endpoint
from support.compare import compare_keyspaces, keyspace
from support.corpus import rdb_files, requires_corpus
from support.filter_ref import expected
from support.servers import RedisServer, start_redis

FILES = [f for f in rdb_files() if f.redis7_loads and not f.row.get("modules")
         and int(f.row.get("keys_in_file") or 0) <= 2000]
RULES: dict[str, dict[str, Any]] = {
    "names and types": {"block_key_regex": ["[aeiou02468]$"], "block_type": ["stream"]},
    "rename": {"rename_prefix": {c: f"R:{c}" for c in "abcdefghijklmnopqrstuvwxyz"},
               "allow_key_regex": ["^[a-m]", "[0-9]"]},
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    base = tmp_path_factory.mktemp("corpus-filters")
    ref = start_redis(base / "reference", args=["--enable-debug-command", "yes", "--databases", "32"])
    tgt = start_redis(base / "target", args=["--databases", "32"])
    yield ref, tgt
    ref.stop()
    tgt.stop()


@requires_corpus(FILES)
@pytest.mark.parametrize("walker", [True, False], ids=["c-walker", "python"])
@pytest.mark.parametrize("name", list(RULES))
async def test_corpus_files_under_rules(servers: tuple[RedisServer, RedisServer], name: str,
                                        walker: bool) -> None:
    ref, tgt = servers
    rules = RULES[name]
    failures: list[str] = []
    compared = files = 0
    for f in FILES:
        ref.client().flushall()
        tgt.client().flushall()
        tgt.client().function_flush()  # a library of the file before would clash
        shutil.copy(f.full, ref.rdb_path)
        ref.rdb_path.chmod(0o644)
        ref.client().execute_command("DEBUG", "RELOAD", "NOSAVE")
        before = keyspace([ref.client()])
        options = PipelineOptions(filters=FilterRules.from_mapping(rules), c_walker=walker)
        spec = PipelineSpec(SourceSpec(SourceKind.RDB_FILES, paths=(str(f.full),)),
                            Endpoint.from_url(tgt.url), options)
        sink = RecordingSink()
        try:
            final = await run_pipeline(spec, events=sink)
        except Exception as exc:  # named in the failure list, the other files still run
            failures.append(f"{f.path}: {exc}")
            continue
        if final.phase is not Phase.DONE or final.keys_failed:
            failures.append(f"{f.path}: {final.phase.value}, {final.keys_failed} failed: {sink.logs[-3:]}")
            continue
        result = compare_keyspaces(expected(before, rules), keyspace([tgt.client()]))
        if not result.ok:
            failures.append(f"{f.path}: {result.summary(3)}")
        compared += result.compared
        files += 1
    out = os.environ.get("CACHEMIGRATE_FILTER_TABLE")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"path": f"corpus RDB ({files} files, {'C walker' if walker else 'Python'})",
                                 "kind": name, "compared": compared, "mismatches": len(failures)}) + "\n")
    assert not failures, "\n".join(failures[:20])
    assert files >= 50 and compared > 300, (files, compared)
