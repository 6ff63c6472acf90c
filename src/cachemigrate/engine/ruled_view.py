"""The source as a migration's rules make it, for a comparison (engine/compare.py,
engine/verify.py): made from the migration's ``PipelineOptions``, the same ``engine/filters.py``
and ``engine/dbmap.py`` the migration applied. Source db N is compared against the target db the
rules give it; a source key the key, db or type rules leave out is expected absent (a target key
of that name is extra); a renamed key is compared with its new name. A target key is explained by
the source keys the rename turns into it (``Filter.sources_of``). Command and group rules are not
followed (their effect depends on the writes of the incremental phase), nor a Lua ``function``
(refused: it may do anything)."""

from __future__ import annotations

from typing import Final

from cachemigrate.engine.dbmap import DbMap
from cachemigrate.engine.filters import compile_rules
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.errors import ConfigError

_KEY_TYPES: Final = frozenset((b"string", b"list", b"set", b"zset", b"hash", b"stream"))


class RuledView:
    """The source as a migration's rules make it (module docstring): ``options`` are the
    migration's (None: every key, under its own name, db to db)."""

    def __init__(self, options: PipelineOptions | None = None) -> None:
        rules = options.filters if options is not None else None
        if rules is not None and rules.function:
            raise ConfigError("a verification cannot follow the filter's Lua function (it may rename, "
                              "split or drop anything): verify a migration without one")
        self._dbmap = DbMap(options) if options is not None else None
        flt = compile_rules(rules)
        self._filter = flt
        self.name_ok = flt.key_ok if flt is not None else None
        self.rename = flt.rename if flt is not None else None
        typed = rules is not None and bool(rules.allow_type or rules.block_type)
        self._type_ok = flt.type_ok if flt is not None and typed else None
        self.skip_ms = flt.skip_ms if flt is not None else 0
        self.max_ttl_ms = flt.max_ttl_ms if flt is not None else 0
        self.identity = flt is None and (options is None or (
            options.db_mode is DbMode.KEEP and not (rules is not None and rules.has_db_rules)))

    def target_db(self, db: int) -> int | None:
        """Where source db ``db`` went (None: left out)."""
        return db if self._dbmap is None else self._dbmap.target(db)

    def keys(self, keys: list[bytes]) -> tuple[list[bytes], list[bytes] | None]:
        """(the source keys the rules on names pass, their names on the target or None: the same)."""
        ok, rename = self.name_ok, self.rename
        if ok is not None:
            keys = [k for k in keys if ok(k)]
        return keys, ([rename(k) for k in keys] if rename is not None else None)

    @property
    def has_type_rules(self) -> bool:
        return self._type_ok is not None

    def type_ok(self, t: bytes) -> bool:
        if self._type_ok is None:
            return True
        return self._type_ok(t.decode() if t in _KEY_TYPES else "module")

    def sources_of(self, tkey: bytes) -> list[bytes]:
        """The source names whose key the target holds as ``tkey`` under the rules on names."""
        names = [tkey] if self._filter is None else self._filter.sources_of(tkey)
        ok = self.name_ok
        return names if ok is None else [n for n in names if ok(n)]
