"""Runs of keys as one entry: the parser's ``batch_hook`` over the C walker (``formats/rdb/walk``).

The file and full-sync fast path at its limit: the C walker turns a run of whole key records into
one bytes object of ``RESTORE key ttl payload [REPLACE] ABSTTL`` commands, and this hook wraps it
in one ``PackedRun`` entry of ``count`` keys. No Python object is made per key. Records the walker
leaves (other opcodes, LRU/LFU info, types it does not walk, big or tiny values) go on through
the transform's per-key path, which makes the same commands.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import cast

from cachemigrate.engine.entry import PackedRun
from cachemigrate.formats.rdb import walk as c_walk

RUN_BYTES = 512 << 10  # bytes of commands per walker call (one PackedRun)


class PackedRuns:
    """``hook(buf, pos, end, db, base, max_value) -> (PackedRun | None, new_pos) | None``."""

    def __init__(
        self,
        footer_versions: Sequence[int | None],
        *,
        replace: bool,
        map_db: Callable[[int], int | None],
        counts: array[int],
        now_ms: Callable[[], int],
        key_filter: tuple[object, ...] | Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        """``key_filter``: the filter rules on key names, run by the walker on each key
        (``Filter.walker_rules``: a tuple of rules it asks in C, or a call per key that answers
        None to leave the key out, bytes for its name). A footer version ``walk.LEFT_OUT``: a
        type the rules leave out, skipped in C."""
        self.footer = c_walk.footer_table(footer_versions)
        self.replace = replace
        self.map_db = map_db
        self.counts = counts  # keys per type byte, added to in place
        self.now_ms = now_ms
        self.expired = 0  # keys skipped because their expire time had passed
        if key_filter is None and c_walk.LEFT_OUT in footer_versions:
            key_filter = c_walk.NO_NAME_RULES  # the types left out are counted in `filtered`
        self.key_filter = key_filter
        self.filtered = 0  # keys the key filter left out

    @property
    def usable(self) -> bool:
        """The walker is built and takes some type under these footers."""
        return c_walk.walk is not None and any(self.footer)

    def __call__(
        self, buf: bytes, pos: int, end: int, db: int, base: int, max_value: int
    ) -> tuple[PackedRun | None, int] | None:
        tdb = self.map_db(db)
        if tdb is None:
            return None  # a left-out db: the per-key path counts what it drops
        walk = c_walk.walk
        assert walk is not None
        if self.key_filter is None:
            out, npos, keys, expired = cast("tuple[bytes, int, int, int]", walk(
                buf, pos, end, self.footer, self.now_ms(), self.replace, max_value, RUN_BYTES, self.counts))
        else:
            out, npos, keys, expired, filtered = cast("tuple[bytes, int, int, int, int]", walk(
                buf, pos, end, self.footer, self.now_ms(), self.replace, max_value, RUN_BYTES, self.counts,
                self.key_filter))
            self.filtered += filtered
        if npos == pos:
            return None
        self.expired += expired
        if not keys:
            return None, npos
        return PackedRun(out, len(out), keys, tdb, base + npos), npos
