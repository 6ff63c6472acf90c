"""The shared corpus is all there: a file missing or changed would silently shrink the tests that
take their parameters from MANIFEST.tsv (support.corpus.manifest lists only present files)."""

from __future__ import annotations

import hashlib

from support.corpus import CORPUS, manifest_rows, require_corpus


def test_every_manifest_file_is_present_and_unchanged() -> None:
    rows = manifest_rows()
    require_corpus(rows)
    bad = []
    for row in rows:
        path = CORPUS / row["path"]
        if not path.is_file():
            bad.append(f"missing {row['path']}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != row["sha256"]:
            bad.append(f"sha256 differs: {row['path']}")
    assert len(rows) > 200 and not bad, bad[:20]
