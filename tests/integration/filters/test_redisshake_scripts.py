"""RedisShake's documented function scripts (docs/src/en/filter/function.md), run unchanged, on the
RDB path (a script sees each key as the commands that rebuild it) and on the incremental phase,
with their documented effect checked against the source by the test's own reference; the rules
file through the CLI; a failing script names its line.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import LogLevel, Phase, RecordingSink
from cachemigrate.errors import MigrationError
from cachemigrate.protocol.endpoint import Endpoint
from support.compare import compare_keyspaces, keyspace
from support.filter_ref import Keyspace, expected, random_dataset
from support.poll import until
from support.servers import RedisServer

CLI = str(Path(sys.executable).parent / "cachemigrate")
FAST = ["--repl-diskless-sync-delay", "0"]

# Verbatim from RedisShake's function documentation ("Best Practices").
PREFIX_RENAME = """\
local prefix_old = "prefix_old_"
local prefix_new = "prefix_new_"

shake.log("old=" .. table.concat(ARGV, " "))

for i, index in ipairs(KEY_INDEXES) do
  local key = ARGV[index]
  if string.sub(key, 1, #prefix_old) == prefix_old then
    ARGV[index] = prefix_new .. string.sub(key, #prefix_old + 1)
  end
end

shake.log("new=" .. table.concat(ARGV, " "))
shake.call(DB, ARGV)
"""
SWAP_DBS = """\
local db1 = 1
local db2 = 2

if DB == db1 then
  DB = db2
elseif DB == db2 then
  DB = db1
end
shake.call(DB, ARGV)
"""
DROP_DB0 = """\
shake.log(DB)
if DB == 0
then
    return
end
shake.call(DB, ARGV)
"""
DROP_HASH = """\
if GROUP == "HASH" then
  return
end
shake.call(DB, ARGV)
"""
DROP_SCRIPTS = """\
if GROUP == "SCRIPTING" then
  return
end
shake.call(DB, ARGV)
"""
ONLY_USER = """\
local prefix = "user:"
local prefix_len = #prefix

if string.sub(KEYS[1], 1, prefix_len) ~= prefix then
  return
end

shake.call(DB, ARGV)
"""
# The later edition of the same page: the examples guard against keyless commands, and one splits
# MSET into SETs.
ONLY_USER_GUARDED = """\
local prefix = "user:"
local prefix_len = #prefix

if not KEYS[1] or string.sub(KEYS[1], 1, prefix_len) ~= prefix then
  return
end

shake.call(DB, ARGV)
"""
PREFIX_RENAME_GUARDED = """\
local prefix_old = "prefix_old_"
local prefix_new = "prefix_new_"

shake.log("old=" .. table.concat(ARGV, " "))

for _, index in ipairs(KEY_INDEXES) do
  local key = ARGV[index]
  if key and string.sub(key, 1, #prefix_old) == prefix_old then
    ARGV[index] = prefix_new .. string.sub(key, #prefix_old + 1)
  end
end

shake.log("new=" .. table.concat(ARGV, " "))
shake.call(DB, ARGV)
"""
SPLIT_MSET = """\
if CMD == "MSET" then
  for i = 2, #ARGV, 2 do
    shake.call(DB, {"SET", ARGV[i], ARGV[i + 1]})
  end
  return
end

shake.call(DB, ARGV)
"""


def _swap(space: Keyspace) -> Keyspace:
    return {({1: 2, 2: 1}.get(db, db), k): v for (db, k), v in space.items()}


def _rename(space: Keyspace) -> Keyspace:
    return expected(space, {"rename_prefix": {"prefix_old_": "prefix_new_"}})


# script, its documented effect on a keyspace (the reference), a check that it did something
SCRIPTS: dict[str, tuple[str, Any]] = {
    "prefix rename": (PREFIX_RENAME, _rename),
    "swap dbs": (SWAP_DBS, _swap),
    "drop db 0": (DROP_DB0, lambda s: expected(s, {"block_db": [0]})),
    "drop hash": (DROP_HASH, lambda s: expected(s, {"block_type": ["hash"]})),
    # Scripts are no keys: the data moves whole, the functions library stays behind (a Redis 7
    # source replicates EVAL by its effects, and no longer SCRIPT LOAD: FUNCTION is what is left).
    "drop scripts": (DROP_SCRIPTS, lambda s: s),
    "only user: keys": (ONLY_USER, lambda s: expected(s, {"allow_key_prefix": ["user:"]})),
    # It looks at KEYS[1] only (as documented): an MSET whose first key is not user: is dropped
    # whole, its user:mset: keys too.
    "only user: keys, guarded": (ONLY_USER_GUARDED, lambda s: {
        k: v for k, v in expected(s, {"allow_key_prefix": ["user:"]}).items()
        if not k[1].startswith(b"user:mset:")}),
    "prefix rename, guarded": (PREFIX_RENAME_GUARDED, _rename),
    # The data is the same; the target receives SETs instead of each MSET (checked by its
    # commandstats in the incremental test).
    "split mset": (SPLIT_MSET, lambda s: s),
}
# The scripts that leave the functions library behind (a command for every db is seen with DB 0
# and without keys).
NO_LIBRARY = ("drop scripts", "only user: keys", "only user: keys, guarded", "drop db 0")


LIBRARY = "#!lua name=shakelib\nredis.register_function('f1', function() return 1 end)"


def _seed(server: RedisServer, library: bool = True) -> None:
    random_dataset(server.client())
    if library:  # (the "only user:" script reads KEYS[1]: a command without keys fails it)
        server.client().function_load(LIBRARY, replace=True)
    for db in (0, 1, 2):
        c = server.client(db=db)
        c.set(f"prefix_old_{db}", "renamed")
        c.hset(f"prefix_old_h{db}", mapping={"a": "1"})
        c.pexpire(f"prefix_old_h{db}", 3_600_000)
        c.set(f"prefix_keep_{db}", "kept")


def _options(script: str, **kw: Any) -> PipelineOptions:
    return PipelineOptions(filters=FilterRules.from_mapping({"function": script}), **kw)


@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_documented_script_on_rdb(redis_factory: Any, name: str) -> None:
    script, effect = SCRIPTS[name]
    source, target = redis_factory("src"), redis_factory("dst")
    _seed(source, library=name != "only user: keys")
    before = keyspace([source.client()])
    sink = RecordingSink()
    spec = PipelineSpec(SourceSpec(SourceKind.RDB_FILES, paths=(str(source.save()),)),
                        Endpoint.from_url(target.url), _options(script))
    final = await run_pipeline(spec, events=sink)
    assert final.phase is Phase.DONE and final.keys_failed == 0, sink.logs[-5:]
    want = effect(before)
    result = compare_keyspaces(want, keyspace([target.client()]))
    assert result.ok, result.summary()
    assert result.compared > 100
    if name.startswith("prefix rename"):
        assert any(m.startswith("lua log: new=") and "prefix_new_" in m for _, m in sink.logs)
    # A command for every db (FUNCTION LOAD) is seen with DB 0: "drop db 0" leaves it behind too.
    assert bool(target.client().function_list()) is (name not in NO_LIBRARY)


@pytest.mark.parametrize("name", ["prefix rename", "swap dbs", "drop hash", "drop scripts",
                                  "only user: keys, guarded", "prefix rename, guarded", "split mset"])
async def test_documented_script_on_incremental(redis_factory: Any, name: str) -> None:
    script, effect = SCRIPTS[name]
    source, target = redis_factory("src", args=FAST), redis_factory("dst")
    sink = RecordingSink()
    stop = asyncio.Event()
    spec = PipelineSpec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(source.url)),
                        Endpoint.from_url(target.url), _options(script, incremental=True))
    task = asyncio.create_task(run_pipeline(spec, events=sink, stop=stop))
    try:
        await until(lambda: sink.last is not None and sink.last.phase is Phase.INCREMENTAL, 60,
                    what="the incremental phase")
        await asyncio.to_thread(_seed, source)
        c = source.client()
        c.eval("redis.call('SET', KEYS[1], ARGV[1])", 1, "lua:k", "by a script")
        c.script_load("return 1")
        msets = 0
        for db in (0, 1, 2):
            d = source.client(db=db)
            for n in range(20):
                d.mset({f"mset:{n}:a": "1", f"mset:{n}:b": "2", f"prefix_old_m{n}": "3",
                        f"user:mset:{n}": "4"})
                msets += 1
        offset = int(c.info("replication")["master_repl_offset"])
        await until(lambda: sink.last is not None and (sink.last.applied_offset or 0) >= offset, 60,
                    what="the target to apply the writes")
    finally:
        stop.set()
        final = await asyncio.wait_for(task, 30)
    assert final.keys_failed == 0, sink.logs[-5:]
    before = keyspace([source.client()])
    assert bool(target.client().function_list()) is (name not in NO_LIBRARY)
    result = compare_keyspaces(effect(before), keyspace([target.client()]))
    assert result.ok, result.summary()
    assert result.compared > 100
    calls = {k: v["calls"] for k, v in target.client().info("commandstats").items()}
    if name == "split mset":
        assert "cmdstat_mset" not in calls and calls["cmdstat_set"] >= 4 * msets, calls
    elif name != "only user: keys, guarded":  # (it drops each MSET: its first key is not user:)
        assert calls.get("cmdstat_mset", 0) >= msets, calls


async def test_script_error_names_its_line(redis_factory: Any) -> None:
    source, target = redis_factory("src"), redis_factory("dst")
    source.client().set("a", "1")
    script = 'local n = 1\nlocal t = nil\nshake.call(DB, t.argv)\n'
    spec = PipelineSpec(SourceSpec(SourceKind.RDB_FILES, paths=(str(source.save()),)),
                        Endpoint.from_url(target.url), _options(script))
    sink = RecordingSink()
    with pytest.raises(MigrationError, match=r"filter function, line 3: .*index local 't'"):
        await run_pipeline(spec, events=sink)
    assert any(lvl is LogLevel.ERROR and "line 3" in m for lvl, m in sink.logs)


def test_sandbox_and_time_limit() -> None:
    from cachemigrate.engine.keyspecs import command_info
    from cachemigrate.engine.script import Script

    argv = [b"SET", b"k", b"v"]
    for code, what in (("io.open('/etc/passwd')", "global 'io'"),
                       ("os.execute('true')", "field 'execute'"),
                       ("require('os')", "global 'require'"),
                       ("loadstring('return 1')()", "global 'loadstring'"),
                       ("python.eval('1')", "global 'python'"),
                       ("debug.sethook()", "global 'debug'")):
        with pytest.raises(MigrationError, match=what):
            Script(code).run(0, command_info(argv), argv)
    with pytest.raises(MigrationError, match="line 2: the function ran past its time limit"):
        Script("local i = 0\nwhile true do i = i + 1 end", time_limit=0.05).run(0, command_info(argv), argv)


def test_cli_rules_file(source_redis: RedisServer, target_redis: RedisServer, tmp_path: Path) -> None:
    """A RedisShake [filter] table plus our rules, from `--filter FILE`, and an option on top."""
    random_dataset(source_redis.client())
    before = keyspace([source_redis.client()])
    rules_file = tmp_path / "shake.toml"
    rules_file.write_text(
        '[filter]\nblock_key_prefix = ["temp:", "cache:"]\nblock_db = [2]\n'
        'rename_prefix = { "old:" = "new:" }\n\n[sync_reader]\naddress = "127.0.0.1:6379"\n',
        encoding="utf-8")
    res = subprocess.run([CLI, "import", str(source_redis.save()), "--target", target_redis.url, "-q",
                          "--filter", str(rules_file), "--skip-type", "stream"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    want = expected(before, {"block_key_prefix": ["temp:", "cache:"], "block_db": [2],
                             "rename_prefix": {"old:": "new:"}, "block_type": ["stream"]})
    result = compare_keyspaces(want, keyspace([target_redis.client()]))
    assert result.ok and result.compared > 100, result.summary()
    rules_file.write_text('block_type = ["hsh"]\n', encoding="utf-8")
    res = subprocess.run([CLI, "import", str(source_redis.save()), "--target", target_redis.url, "-q",
                          "--filter", str(rules_file)],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "block_type[0]: unknown type 'hsh'" in res.stderr


def test_cli_migrate_options(redis_factory: Any) -> None:
    """The filter options of `migrate`, without a file: a full sync that ends by itself."""
    source, target = redis_factory("src", args=FAST), redis_factory("dst")
    random_dataset(source.client())
    before = keyspace([source.client()])
    res = subprocess.run([CLI, "migrate", source.url, target.url, "-q", "--skip-key-prefix", "temp:",
                          "--skip-key-prefix", "cache:", "--map-db", "2=0", "--rename-prefix", "user:=u:",
                          "--skip-type", "zset", "--max-ttl", "86400"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    want = expected(before, {"block_key_prefix": ["temp:", "cache:"], "db_map": {"2": 0},
                             "rename_prefix": {"user:": "u:"}, "block_type": ["zset"], "max_ttl": 86400})
    result = compare_keyspaces(want, keyspace([target.client()]), ttl_tolerance_ms=120_000)
    assert result.ok and result.compared > 100, result.summary()
