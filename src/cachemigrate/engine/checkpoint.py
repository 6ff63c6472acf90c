"""Where a migration can be continued from, and the protocol for storing it.

The engine only knows the protocol; the service stores checkpoints in its database, the CLI in a
JSON file (FileCheckpointStore).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cachemigrate.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The replication position (replid, offset) that the target has fully applied.

    ``source`` names the source endpoint (host:port) so a checkpoint is never applied to another
    server; ``phase`` is "full" (the RDB was not finished: a PSYNC cannot continue) or
    "incremental". ``extra`` carries reader-specific state (e.g. per-file byte offsets).
    """

    source: str
    replid: str
    offset: int
    phase: str = "incremental"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            raw = json.loads(text)
            return cls(
                source=str(raw["source"]),
                replid=str(raw["replid"]),
                offset=int(raw["offset"]),
                phase=str(raw.get("phase", "incremental")),
                extra=dict(raw.get("extra") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"not a cachemigrate checkpoint: {exc}") from None


class CheckpointStore(Protocol):
    """Persists the last checkpoint of one migration."""

    async def load(self) -> Checkpoint | None: ...

    async def save(self, checkpoint: Checkpoint) -> None: ...


class MemoryCheckpointStore:
    """Keeps the checkpoint in memory (tests, one-shot runs without --checkpoint)."""

    def __init__(self, initial: Checkpoint | None = None) -> None:
        self.checkpoint = initial
        self.saves = 0

    async def load(self) -> Checkpoint | None:
        return self.checkpoint

    async def save(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.saves += 1


class FileCheckpointStore:
    """A JSON file, replaced atomically on every save so a crash never leaves half a checkpoint."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    async def load(self) -> Checkpoint | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read checkpoint {self.path}: {exc.strerror}") from None
        return Checkpoint.from_json(text)

    async def save(self, checkpoint: Checkpoint) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(checkpoint.to_json(), encoding="utf-8")
        os.replace(tmp, self.path)
