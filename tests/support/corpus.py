"""The shared corpus of real RDB/AOF files (../shared/corpus) and its manifest."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from support.servers import ROOT

CORPUS = Path(os.environ.get("CACHEMIGRATE_CORPUS", ROOT.parent / "shared" / "corpus")).resolve()


@dataclass(frozen=True)
class CorpusFile:
    path: str  # relative to CORPUS
    row: dict[str, str]

    @property
    def full(self) -> Path:
        return CORPUS / self.path

    @property
    def kind(self) -> str:
        return self.row.get("kind", "")

    @property
    def redis7_loads(self) -> bool:
        return self.row.get("redis7.0.15_load", "").startswith("LOADED")

    @property
    def rdb_version(self) -> str:
        return self.row.get("rdb_version", "")


def manifest() -> list[CorpusFile]:
    path = CORPUS / "MANIFEST.tsv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [CorpusFile(r["path"], r) for r in rows if (CORPUS / r["path"]).exists()]


def rdb_files() -> list[CorpusFile]:
    return [f for f in manifest() if f.kind.startswith("rdb")]
