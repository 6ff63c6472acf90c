"""The filter rules of a migration (docs/filters.md): what moves and under which name.

``FilterRules`` is the frozen, validated rule set (``PipelineOptions.filters``), made from a
mapping (a TOML rules file, the API's ``filter`` object) by ``FilterRules.from_mapping`` and
turned back into one by ``to_mapping`` (what the service stores and shows); ConfigError names
the first wrong rule. engine/filters.py compiles it into the ``Filter`` the transforms apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cachemigrate.errors import ConfigError

TYPES: Final = ("string", "list", "set", "zset", "hash", "stream", "module")
GROUPS: Final = (
    "BITMAP", "CLUSTER", "CONNECTION", "GENERIC", "GEO", "HASH", "HYPERLOGLOG", "LIST", "PUBSUB",
    "SCRIPTING", "SENTINEL", "SERVER", "SET", "SORTED_SET", "STREAM", "STRING", "TRANSACTIONS",
    "TAIRHASH", "TAIRSTRING", "TAIRZSET",
)  # fmt: skip
MAX_ITEMS: Final = 1000  # per list of a rule set (an API request is bounded)
MAX_TEXT: Final = 1024  # per string of a rule
MAX_FUNCTION: Final = 64 << 10
MAX_DB: Final = 1 << 20
MAX_SECONDS: Final = 100 * 365 * 86400


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """Keys named exactly, by prefix, by suffix or by a regular expression (``re.search`` over
    the key's bytes)."""

    exact: frozenset[bytes] = frozenset()
    prefix: tuple[bytes, ...] = ()
    suffix: tuple[bytes, ...] = ()
    regex: tuple[bytes, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefix or self.suffix or self.regex)

    def matcher(self) -> Callable[[bytes], bool]:
        exact, prefix, suffix = self.exact, self.prefix, self.suffix
        joined = b"|".join(b"(?:%s)" % r for r in self.regex)
        rx = re.compile(joined, re.DOTALL).search if self.regex else None
        if exact and not (prefix or suffix or rx):
            return exact.__contains__
        if prefix and not (exact or suffix or rx):
            return lambda k: k.startswith(prefix)

        def match(k: bytes) -> bool:
            return ((k in exact) or (bool(prefix) and k.startswith(prefix))
                    or (bool(suffix) and k.endswith(suffix)) or (rx is not None and rx(k) is not None))

        return match


@dataclass(frozen=True, slots=True)
class FilterRules:
    allow_key: KeyMatch = field(default_factory=KeyMatch)
    block_key: KeyMatch = field(default_factory=KeyMatch)
    allow_db: frozenset[int] = frozenset()
    block_db: frozenset[int] = frozenset()
    db_map: tuple[tuple[int, int], ...] = ()  # source db -> target db
    allow_type: frozenset[str] = frozenset()
    block_type: frozenset[str] = frozenset()
    allow_command: frozenset[str] = frozenset()
    block_command: frozenset[str] = frozenset()
    allow_command_group: frozenset[str] = frozenset()
    block_command_group: frozenset[str] = frozenset()
    skip_expiring_within_ms: int = 0  # keys whose TTL is shorter are left behind
    max_ttl_ms: int = 0  # longer TTLs (and keys without one) get this one
    rename_prefix: tuple[tuple[bytes, bytes], ...] = ()  # old prefix -> new prefix
    function: str = ""  # Lua, RedisShake's function API (engine/script.py)

    # ---- what is set -----------------------------------------------------------------------

    @property
    def has_db_rules(self) -> bool:
        return bool(self.allow_db or self.block_db or self.db_map)

    @property
    def has_key_rules(self) -> bool:
        """Rules a key record is checked against (beyond its db)."""
        return bool(self.allow_key or self.block_key or self.allow_type or self.block_type
                    or self.skip_expiring_within_ms or self.max_ttl_ms or self.rename_prefix or self.function)

    @property
    def has_command_rules(self) -> bool:
        return bool(self.allow_key or self.block_key or self.allow_type or self.block_type
                    or self.allow_command or self.block_command or self.allow_command_group
                    or self.block_command_group or self.rename_prefix or self.function)

    def __bool__(self) -> bool:
        return self.has_db_rules or self.has_key_rules or self.has_command_rules

    def db_target(self, db: int) -> tuple[bool, int | None]:
        """(whether db ``db`` is migrated, the target the db map gives it or None)."""
        if db in self.block_db or (self.allow_db and db not in self.allow_db):
            return False, None
        for src, dst in self.db_map:
            if src == db:
                return True, dst
        return True, None

    # ---- from and to mappings ------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "filter") -> FilterRules:
        """Rules from a mapping of RedisShake's ``[filter]`` names and ours (docs/filters.md);
        ConfigError names the first wrong rule (``where.name``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a table of rules")
        unknown = sorted(set(data) - set(_RULES))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown rule (known: {', '.join(_RULES)})")
        kw: dict[str, Any] = {}
        keys: dict[str, dict[str, Any]] = {"allow": {}, "block": {}}
        for name, value in data.items():
            at = f"{where}.{name}"
            kind = _RULES[name]
            if kind == "keys":
                side, _, what = name.partition("_key")
                items = [_key_bytes(v, at) for v in _list(value, at)]
                what = what.lstrip("_") or "exact"
                if what == "regex":
                    for i, r in enumerate(items):
                        try:
                            re.compile(r)
                        except re.error as exc:
                            raise ConfigError(f"{at}[{i}]: not a regular expression: {exc}") from None
                keys[side][what] = frozenset(items) if what == "exact" else tuple(items)
            elif kind == "dbs":
                kw[name] = frozenset(_db(v, f"{at}[{i}]") for i, v in enumerate(_list(value, at)))
            elif kind == "db_map":
                kw[name] = tuple(sorted(_db_map(value, at)))
            elif kind in ("types", "commands", "groups"):
                kw[name] = frozenset(_names(kind, value, at))
            elif kind == "seconds":
                ms = _seconds(value, at)
                kw["skip_expiring_within_ms" if name == "skip_expiring_within" else "max_ttl_ms"] = ms
            elif kind == "rename":
                kw[name] = _renames(value, at)
            else:  # function
                if not isinstance(value, str) or len(value) > MAX_FUNCTION:
                    raise ConfigError(f"{at}: must be Lua source text of at most {MAX_FUNCTION} bytes")
                kw[name] = value.strip()
        rules = cls(allow_key=KeyMatch(**keys["allow"]), block_key=KeyMatch(**keys["block"]), **kw)
        if rules.function:
            from cachemigrate.engine.script import check_script

            check_script(rules.function, where=f"{where}.function")
        return rules

    def to_mapping(self) -> dict[str, Any]:
        """The rules as given (JSON and TOML friendly): ``from_mapping(to_mapping())`` is equal."""
        out: dict[str, Any] = {}
        for side, m in (("allow", self.allow_key), ("block", self.block_key)):
            for what, items in (("", sorted(m.exact)), ("_prefix", m.prefix), ("_suffix", m.suffix),
                                ("_regex", m.regex)):
                if items:
                    out[f"{side}_key{what}"] = [_text(b) for b in items]
        for name in ("allow_db", "block_db", "allow_type", "block_type", "allow_command", "block_command",
                     "allow_command_group", "block_command_group"):
            v = getattr(self, name)
            if v:
                out[name] = sorted(v)
        if self.db_map:
            out["db_map"] = {str(s): d for s, d in self.db_map}
        if self.skip_expiring_within_ms:
            out["skip_expiring_within"] = self.skip_expiring_within_ms / 1000
        if self.max_ttl_ms:
            out["max_ttl"] = self.max_ttl_ms / 1000
        if self.rename_prefix:
            out["rename_prefix"] = {_text(a): _text(b) for a, b in self.rename_prefix}
        if self.function:
            out["function"] = self.function
        return out


_RULES: Final = {
    "allow_key": "keys", "allow_key_prefix": "keys", "allow_key_suffix": "keys", "allow_key_regex": "keys",
    "block_key": "keys", "block_key_prefix": "keys", "block_key_suffix": "keys", "block_key_regex": "keys",
    "allow_db": "dbs", "block_db": "dbs", "db_map": "db_map",
    "allow_type": "types", "block_type": "types",
    "allow_command": "commands", "block_command": "commands",
    "allow_command_group": "groups", "block_command_group": "groups",
    "skip_expiring_within": "seconds", "max_ttl": "seconds",
    "rename_prefix": "rename", "function": "function",
}  # fmt: skip


def _list(value: Any, at: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{at}: must be a list")
    if len(value) > MAX_ITEMS:
        raise ConfigError(f"{at}: at most {MAX_ITEMS} items")
    return list(value)


def _key_bytes(value: Any, at: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise ConfigError(f"{at}: each item must be a non-empty string of at most {MAX_TEXT} characters")
    return value.encode("utf-8", "surrogateescape")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _db(value: Any, at: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_DB:
        raise ConfigError(f"{at}: must be a db number (0-{MAX_DB - 1})")
    return int(value)


def _db_map(value: Any, at: str) -> Iterable[tuple[int, int]]:
    if not isinstance(value, Mapping):
        raise ConfigError(f'{at}: must be a table of source db -> target db (e.g. {{"1" = 0}})')
    if len(value) > MAX_ITEMS:
        raise ConfigError(f"{at}: at most {MAX_ITEMS} items")
    return [(_db(k, f"{at}.{k}"), _db(v, f"{at}.{k}")) for k, v in value.items()]


def _names(kind: str, value: Any, at: str) -> Iterable[str]:
    out = []
    for i, given in enumerate(_list(value, at)):
        if not isinstance(given, str) or not given or len(given) > 64:
            raise ConfigError(f"{at}[{i}]: must be a name")
        if kind == "types":
            v = given.lower()
            if v not in TYPES:
                raise ConfigError(f"{at}[{i}]: unknown type {v!r} (known: {', '.join(TYPES)})")
        elif kind == "groups":
            v = given.upper().replace("-", "_")
            if v not in GROUPS:
                raise ConfigError(f"{at}[{i}]: unknown command group {v!r} (known: {', '.join(GROUPS)})")
        else:
            v = given.upper().replace("|", "-")
        out.append(v)
    return out


def _seconds(value: Any, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_SECONDS:
        raise ConfigError(f"{at}: must be a number of seconds (more than 0, at most {MAX_SECONDS})")
    ms: int = round(value * 1000)
    return max(1, ms)


def _renames(value: Any, at: str) -> tuple[tuple[bytes, bytes], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f'{at}: must be a table of old prefix -> new prefix (e.g. {{"old:" = "new:"}})')
    if len(value) > MAX_ITEMS:
        raise ConfigError(f"{at}: at most {MAX_ITEMS} items")
    pairs = []
    for k, v in value.items():
        if not isinstance(v, str) or len(v) > MAX_TEXT:
            raise ConfigError(f"{at}.{k}: the new prefix must be a string of at most {MAX_TEXT} characters")
        pairs.append((_key_bytes(k, f"{at}.{k}"), v.encode("utf-8", "surrogateescape")))
    return tuple(pairs)

