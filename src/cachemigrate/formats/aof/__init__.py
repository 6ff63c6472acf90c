"""AOF formats, sans-IO: the multi-part manifest (``_manifest``) and a streaming command splitter
(``_splitter``) for the RESP part of an AOF.
"""

from __future__ import annotations

from ._manifest import Manifest, ManifestFile, parse_manifest, split_args
from ._splitter import RDB_MAGICS, AofCommand, AofSplitter, Truncation, is_rdb_start

__all__ = [
    "RDB_MAGICS",
    "AofCommand",
    "AofSplitter",
    "Manifest",
    "ManifestFile",
    "Truncation",
    "is_rdb_start",
    "parse_manifest",
    "split_args",
]
