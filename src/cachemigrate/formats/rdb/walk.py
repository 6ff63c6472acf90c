"""The C walker (``_walk.c``), when it is built: whole RDB key records straight to RESTORE commands.

``walk`` is None when the extension is missing (no compiler at install time): the pure-Python
hot loop in ``_fast.py`` then does the same work, record by record, as it does when a caller
turns the walker off (``PipelineOptions.c_walker``; tests run both paths).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

WalkResult = tuple[bytes, int, int, int] | tuple[bytes, int, int, int, int]
Walk = Callable[..., WalkResult]
"""``walk(buf, pos, end, footer, now_ms, replace, max_value, out_limit, counts[, key_filter]) ->
(commands, new_pos, keys, expired[, filtered])``: positional only, as C extension functions parsed
with ``PyArg_ParseTuple`` are; called from one place (``engine.packed_runs.PackedRuns``), once per
run of up to 512 KiB. ``key_filter(name) -> new name | None`` (the filter rules on key names,
engine/filters.py): None leaves the key out, counted in ``filtered``."""

walk: Walk | None
crc64: Callable[..., int] | None
skip_groups: Callable[[bytes, int, int, int, int], tuple[int, int]] | None
"""``skip_groups(buf, pos, end, shape, n) -> (pos, done)``: at most n element groups of a shape
(``_skip.GROUP_SHAPES``) skipped, up to the last whole one before end: the big-key walks."""
try:
    from . import _walk
except ImportError:
    walk = crc64 = skip_groups = None
else:
    walk = _walk.walk
    crc64 = _walk.crc64
    skip_groups = _walk.skip_groups

# Type bytes the C walker takes (strings, the classic collections, the single-blob encodings,
# quicklists, streams up to v3); modules, the field-TTL hashes and v4 streams stay on the Python path.
WALK_TYPES: Final = frozenset({0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21})


LEFT_OUT: Final = -1
"""In ``footer_table``'s versions: a type the filter rules leave out. The walker skips its keys by
their span and counts them in ``filtered`` (so a ``key_filter`` must be given: ``NO_NAME_RULES``
when no rule is about names)."""
NO_NAME_RULES: Final = (None, (), (), None, (), (), ())


def footer_table(versions: Sequence[int | None]) -> bytes:
    """The ``footer`` argument of ``walk``: per type byte, the DUMP footer version (0: not walked;
    255: ``LEFT_OUT``)."""
    return bytes(
        255 if t in WALK_TYPES and v == LEFT_OUT
        else (v or 0) if t in WALK_TYPES and v is not None and 0 < v < 255 else 0
        for t, v in enumerate(versions[:256])
    ).ljust(256, b"\0")
