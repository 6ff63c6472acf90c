"""A migration's filter rules compiled (docs/filters.md): what moves and under which name, asked
per key and per command. ``compile_rules`` makes the ``Filter`` the readers' transforms apply
from the rule set (``FilterRules``, engine/filter_rules.py):

- the RDB path (file import, AOF preamble, full sync, SCAN): ``Transformer`` asks
  ``Filter.key_admit`` per key before anything is decoded;
- the command path (incremental, AOF commands): ``Filter.command`` per command.

The db rules (allow/block db, db map) live in ``engine/dbmap.py``, the one place a source db
becomes a target db. Order (RedisShake's): db, then key, type, command and group rules; block
rules before allow lists; an allow list given holds only what it names. A command with several
keys passes when every key passes and is dropped when none does; when they disagree it is
dropped and a log line names its keys. Then the expiry rules, the prefix rename and last the Lua
``function`` (engine/script.py), which sees what the rules let through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.engine.keyspecs import CommandInfo, command_info
from cachemigrate.engine.status import EventSink, LogLevel

# The key type a command group writes (type rules on the command path); generic commands none.
GROUP_TYPE: Final = {
    "STRING": "string", "BITMAP": "string", "HYPERLOGLOG": "string", "LIST": "list", "SET": "set",
    "SORTED_SET": "zset", "GEO": "zset", "HASH": "hash", "STREAM": "stream",
}  # fmt: skip
MIXED_LOGGED = 100  # multi-key commands named in the log when their keys disagree; then counted


class Filter:
    """The rules, compiled for one reader's stream (one Lua state each: ``script``)."""

    def __init__(self, rules: FilterRules, events: EventSink | None = None) -> None:
        self.rules = rules
        self.events = events
        block = rules.block_key.matcher() if rules.block_key else None
        allow = rules.allow_key.matcher() if rules.allow_key else None
        self.key_ok: Callable[[bytes], bool] | None
        if block is None and allow is None:
            self.key_ok = None
        elif allow is None:
            assert block is not None
            self.key_ok = lambda k: not block(k)
        elif block is None:
            self.key_ok = allow
        else:
            self.key_ok = lambda k: not block(k) and allow(k)
        self.type_ok: Callable[[str], bool] = (
            lambda t: t not in rules.block_type and (not rules.allow_type or t in rules.allow_type)
        )
        # Longest old prefix first: "a:b:" renames before "a:" does.
        self._renames = sorted(rules.rename_prefix, key=lambda p: -len(p[0]))
        self.rename: Callable[[bytes], bytes] | None = self._rename if self._renames else None
        self.skip_ms = rules.skip_expiring_within_ms
        self.max_ttl_ms = rules.max_ttl_ms
        self.has_commands = rules.has_command_rules
        self._cmd_rules = bool(rules.allow_command or rules.block_command or rules.allow_command_group
                               or rules.block_command_group or rules.allow_type or rules.block_type)
        self.script = None
        if rules.function:
            from cachemigrate.engine.script import Script

            self.script = Script(rules.function, log=self._script_log)
        self.mixed = 0  # multi-key commands dropped because their keys disagree
        self.commands_dropped = 0

    def walker_rules(self) -> tuple[object, ...] | Callable[[bytes], bytes | None] | None:
        """The rules on names for the C walker (``formats/rdb/walk``): a tuple it asks in C when
        they are exact names, prefixes and suffixes (and the rename); a Python call per key
        with regular expressions; None when no rule is about names."""
        r = self.rules
        if self.key_ok is None and self.rename is None:
            return None
        if r.allow_key.regex or r.block_key.regex:
            return self.name_filter()
        return (r.block_key.exact or None, r.block_key.prefix, r.block_key.suffix,
                r.allow_key.exact or None, r.allow_key.prefix, r.allow_key.suffix, tuple(self._renames))

    def name_filter(self) -> Callable[[bytes], bytes | None]:
        """One call per key for the C walker: None, the key stays behind; else its name."""
        ok, rename = self.key_ok, self.rename
        if ok is None and rename is None:
            return lambda k: k
        if rename is None:
            assert ok is not None
            return lambda k: k if ok(k) else None
        if ok is None:
            return rename
        return lambda k: rename(k) if ok(k) else None

    def _rename(self, key: bytes) -> bytes:
        for old, new in self._renames:
            if key.startswith(old):
                return new + key[len(old):]
        return key

    def sources_of(self, name: bytes) -> list[bytes]:
        """The source names the rename turns into ``name`` (the rename backwards; a verification
        finds the source key of a target key by it), whether or not the key rules pass them."""
        if self.rename is None:
            return [name]
        out = [name] if self._rename(name) == name else []
        for old, new in self._renames:
            if name.startswith(new):
                source = old + name[len(new):]
                if source not in out and self._rename(source) == name:
                    out.append(source)
        return out

    def _script_log(self, msg: str) -> None:
        if self.events is not None:
            self.events.log(LogLevel.INFO, f"lua log: {msg}")

    # ---- a command (incremental phase, AOF) ----------------------------------------------------

    def command(self, argv: list[bytes], name: bytes, db: int) -> list[tuple[list[bytes], int]] | None:
        """What becomes of one command bound for target db ``db``: None, it goes as it is; else
        the commands to send instead, each with its db ([]: dropped)."""
        info = command_info(argv, name)
        if self._cmd_rules and not self._command_ok(info):
            self.commands_dropped += 1
            return []
        idx = info.key_indexes
        if idx and self.key_ok is not None:
            ok = [self.key_ok(bytes(argv[i])) for i in idx]
            if not all(ok):
                self.commands_dropped += 1
                if any(ok):
                    self._log_mixed(info, argv, ok)
                return []
        changed = False
        if idx and self.rename is not None:
            new = list(argv)
            for i in idx:
                k = bytes(argv[i])
                r = self.rename(k)
                if r != k:
                    new[i] = r
                    changed = True
            argv = new
        if self.script is not None:
            out = self.script.run(max(db, 0), info, argv)  # (a command for every db: DB 0)
            if not out:
                self.commands_dropped += 1
            return out
        return [(argv, db)] if changed else None

    def _command_ok(self, info: CommandInfo) -> bool:
        r = self.rules
        container = info.name.partition("-")[0]
        names = {info.name, container}
        if r.block_command and names & r.block_command:
            return False
        if r.allow_command and not names & r.allow_command:
            return False
        if info.group in r.block_command_group:
            return False
        if r.allow_command_group and info.group not in r.allow_command_group:
            return False
        t = GROUP_TYPE.get(info.group)
        return t is None or self.type_ok(t)

    def _log_mixed(self, info: CommandInfo, argv: list[bytes], ok: list[bool]) -> None:
        self.mixed += 1
        if self.events is None or self.mixed > MIXED_LOGGED:
            return
        if self.mixed == MIXED_LOGGED:
            self.events.log(LogLevel.WARNING,
                            "more multi-key commands dropped; only the count is kept from here on")
            return
        passed = [bytes(argv[i]) for i, k in zip(info.key_indexes, ok, strict=True) if k]
        left = [bytes(argv[i]) for i, k in zip(info.key_indexes, ok, strict=True) if not k]
        self.events.log(LogLevel.WARNING, f"{info.name} dropped: its keys disagree with the filter rules "
                        f"(passed: {_show(passed)}; filtered: {_show(left)})")


def _show(keys: list[bytes]) -> str:
    shown = ", ".join(repr(k[:64])[2:-1] for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def compile_rules(rules: FilterRules | None, events: EventSink | None = None) -> Filter | None:
    """The filter a transform applies, None when ``rules`` hold nothing beyond db rules (those
    are ``engine/dbmap.py``'s)."""
    if rules is None or not (rules.has_key_rules or rules.has_command_rules):
        return None
    return Filter(rules, events)
