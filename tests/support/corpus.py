"""The shared corpus of real RDB/AOF files (../shared/corpus) and its manifest."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.require import require, requirement
from support.servers import ROOT

CORPUS = Path(os.environ.get("CACHEMIGRATE_CORPUS", ROOT.parent / "shared" / "corpus")).resolve()
CORPUS_HOW = (
    f"the shared corpus with its MANIFEST.tsv at {CORPUS} (../shared/corpus beside the checkout, "
    "or CACHEMIGRATE_CORPUS=/path/to/corpus)"
)


def _present() -> bool:
    return (CORPUS / "MANIFEST.tsv").is_file()


def requires_corpus(found: object = True, what: str = "") -> pytest.MarkDecorator:
    """The mark of a test that reads the corpus; ``found`` is what it found there (files, a flag)."""
    return requirement(_present() and bool(found), f"{what} in {CORPUS_HOW}" if what else CORPUS_HOW)


def require_corpus(found: object = True, what: str = "") -> None:
    """``requires_corpus`` inside a test: fails in CI, skips locally, when ``found`` is empty."""
    require(_present() and bool(found), f"{what} in {CORPUS_HOW}" if what else CORPUS_HOW)


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


def manifest_rows() -> list[dict[str, str]]:
    """Every row of MANIFEST.tsv, its file present or not ([] without a corpus)."""
    path = CORPUS / "MANIFEST.tsv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def manifest() -> list[CorpusFile]:
    """The manifest's files that are present (tests/unit/test_corpus.py checks that all are)."""
    return [CorpusFile(r["path"], r) for r in manifest_rows() if (CORPUS / r["path"]).exists()]


def rdb_files() -> list[CorpusFile]:
    return [f for f in manifest() if f.kind.startswith("rdb")]
