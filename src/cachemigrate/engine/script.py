"""The Lua ``function`` hook, with RedisShake's API, so that its scripts run unchanged.

Per command (the commands of the stream, or those that rebuild a key of an RDB) the script runs
once as a chunk with these globals set: ``DB`` (number: the db the command goes to), ``GROUP``
(Redis's command group, ``"STRING"``, ``"SORTED_SET"``...), ``CMD`` (``"SET"``,
``"XGROUP-CREATE"``), ``KEYS`` / ``KEY_INDEXES`` / ``SLOTS`` (tables: every key of the command,
its 1-based place in ``ARGV``, its cluster slot) and ``ARGV`` (the command, name first).
``shake.call(db, argv)`` sends a command to the target (any number of times; none drops the
command); ``shake.log(msg)`` writes a line to the migration's log.

Lua 5.1 (what RedisShake embeds, gopher-lua, implements), through lupa. Sandboxed: the chunk
runs in its own environment with the pure parts of the standard library (string, table, math,
os.time/clock/date/difftime) and nothing of io, os, package, debug, load*, dofile or Python;
memory is capped, and each call has a CPU time limit. An error names the script line:
``filter function, line 3: attempt to index a nil value``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from cachemigrate.engine.keyspecs import CommandInfo
from cachemigrate.errors import ConfigError, MigrationError
from cachemigrate.protocol.cluster import key_slot

TIME_LIMIT: Final = 1.0  # CPU seconds per call
MAX_MEMORY: Final = 64 << 20
_HOOK_EVERY: Final = 1000  # Lua instructions between two looks at the clock

# Trusted code of the harness: builds the sandbox, runs the chunk with the API globals set.
_HARNESS: Final = r"""
local code = ...
local clock = os.clock
local sethook = debug.sethook
local out, logs = {}, {}
local shake = {}
function shake.call(db, argv)
  if type(argv) ~= "table" then error("shake.call: the second argument must be a table (ARGV)", 2) end
  local copy = {}
  for i = 1, #argv do copy[i] = argv[i] end
  out[#out + 1] = {tonumber(db) or db, copy}
end
function shake.log(msg) logs[#logs + 1] = tostring(msg) end
local function pick(lib, names)
  local t = {}
  for _, n in ipairs(names) do t[n] = lib[n] end
  return t
end
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
  xpcall = xpcall, rawequal = rawequal, rawget = rawget, rawset = rawset,
  setmetatable = setmetatable, getmetatable = getmetatable, print = shake.log,
  string = pick(string, {"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
                         "match", "rep", "reverse", "sub", "upper"}),
  table = pick(table, {"concat", "insert", "maxn", "remove", "sort"}),
  math = pick(math, {"abs", "ceil", "cos", "deg", "exp", "floor", "fmod", "frexp", "huge",
                     "ldexp", "log", "log10", "max", "min", "modf", "pi", "pow", "rad", "random",
                     "randomseed", "sin", "sqrt", "tan", "sinh", "cosh", "tanh", "asin", "acos",
                     "atan", "atan2"}),
  os = pick(os, {"time", "clock", "date", "difftime"}),
  shake = shake,
}
env._G = env
local fn, err = loadstring(code, "=function")
if not fn then return nil, err end
setfenv(fn, env)
local deadline = 0
local function hook()
  if clock() > deadline then error("the function ran past its time limit", 2) end
end
return function(db, group, cmd, keys, key_indexes, slots, argv, limit)
  out, logs = {}, {}
  env.DB, env.GROUP, env.CMD = db, group, cmd
  env.KEYS, env.KEY_INDEXES, env.SLOTS, env.ARGV = keys, key_indexes, slots, argv
  deadline = clock() + limit
  sethook(hook, "", HOOK_EVERY)
  local ok, e = pcall(fn)
  sethook()
  if not ok then return false, tostring(e), logs end
  return true, out, logs
end
""".replace("HOOK_EVERY", str(_HOOK_EVERY))

_WHERE = re.compile(r"^function:(\d+): ?")


def _lupa() -> Any:
    try:
        from lupa import lua51
    except ImportError:
        raise ConfigError("the filter function needs Lua: install cachemigrate[lua] (lupa)") from None
    return lua51


def _deny(obj: object, attr: object, is_setting: bool) -> object:
    raise AttributeError("no Python objects in the sandbox")


def _message(err: object, where: str) -> str:
    text = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
    m = _WHERE.match(text)
    if m:
        return f"{where}, line {m.group(1)}: {text[m.end():]}"
    return f"{where}: {text}"


class Script:
    """One Lua state running one function script; ``run`` per command."""

    def __init__(self, code: str, *, log: Callable[[str], None] | None = None,
                 time_limit: float = TIME_LIMIT, where: str = "filter function") -> None:
        lua51 = _lupa()
        self.where = where
        self.time_limit = time_limit
        self.log = log
        self.calls = 0
        self._lua = lua51.LuaRuntime(encoding=None, register_eval=False, register_builtins=False,
                                     max_memory=MAX_MEMORY, attribute_filter=_deny)
        self._lua.execute("python = nil")
        made = self._lua.execute(_HARNESS, code.encode())
        if isinstance(made, tuple):  # (nil, syntax error)
            raise ConfigError(_message(made[1], where))
        self._run = made
        self._table = self._lua.table_from

    def run(self, db: int, info: CommandInfo, argv: list[bytes]) -> list[tuple[list[bytes], int]]:
        """The commands the script sends for ``argv`` (bound for db ``db``), each with its db."""
        self.calls += 1
        keys = [bytes(argv[i]) for i in info.key_indexes]
        table = self._table
        try:
            ok, out, logs = self._run(
                db, info.group.encode(), info.name.encode(), table(keys),
                table([i + 1 for i in info.key_indexes]), table([key_slot(k) for k in keys]),
                table([bytes(a) for a in argv]), self.time_limit,
            )
        except Exception as exc:  # LuaMemoryError, LuaError outside pcall
            msg = _message(exc, self.where) if str(exc) else f"{self.where}: out of memory"
            raise MigrationError(msg) from None
        if logs and self.log is not None:
            for line in logs.values():
                self.log(line.decode(errors="replace") if isinstance(line, bytes) else str(line))
        if not ok:
            raise MigrationError(_message(out, self.where))
        result: list[tuple[list[bytes], int]] = []
        for item in out.values():
            tdb, targv = item[1], item[2]
            if not isinstance(tdb, int | float) or tdb != int(tdb) or tdb < 0:
                raise MigrationError(f"{self.where}: shake.call: the db must be a db number, not {tdb!r}")
            args = [_arg(a, self.where) for a in targv.values()]
            if not args:
                raise MigrationError(f"{self.where}: shake.call: ARGV is empty")
            result.append((args, int(tdb)))
        return result


def _arg(a: object, where: str) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, bool):
        raise MigrationError(f"{where}: shake.call: ARGV holds a boolean")
    if isinstance(a, int):
        return b"%d" % a
    if isinstance(a, float):
        return b"%d" % a if a.is_integer() else b"%.14g" % a
    raise MigrationError(f"{where}: shake.call: ARGV holds a {type(a).__name__}, not a string or number")


def check_script(code: str, *, where: str = "filter function") -> None:
    """ConfigError naming the line when ``code`` does not compile (or Lua is not installed)."""
    Script(code, where=where)
