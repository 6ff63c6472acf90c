"""What a migration is asked to do: frozen options handed to ``pipeline.run_pipeline``.

Every setting is filled in by the caller (the CLI, the service's settings): nothing below the
edges reads the environment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.protocol.endpoint import Endpoint, split_host_port
from cachemigrate.protocol.netpolicy import UNREACHABLE, NetworkPolicy


class SourceKind(enum.StrEnum):
    RDB_FILES = "rdb_files"  # local RDB files (or any byte streams opened by the caller)
    AOF_FILES = "aof_files"  # AOF file, AOF with RDB preamble, or multi-part AOF directory/manifest
    SYNC = "sync"  # act as a replica: PSYNC full (+ incremental)
    SCAN = "scan"  # SCAN + DUMP + PTTL, for sources that refuse SYNC


class ResumeMode(enum.StrEnum):
    AUTO = "auto"  # reconnect with capped backoff, forever
    MANUAL = "manual"  # a dropped link fails the run with a clear error


class DbMode(enum.StrEnum):
    KEEP = "keep"  # every source db goes to the same index on the target
    ONLY = "only"  # only source db `db` is migrated (to the same index, or to target_db)
    FOLD = "fold"  # every source db goes into db 0 of the target


@dataclass(frozen=True, slots=True)
class S3Settings:
    """How to reach an S3-compatible store. Unset fields fall back to boto3's own lookup
    (``AWS_*`` variables, the shared config and credentials files, instance roles)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    path_style: bool = False  # bucket in the path (MinIO, most S3-compatible stores)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: SourceKind
    paths: tuple[str, ...] = ()  # RDB_FILES / AOF_FILES: names relative to ``root``
    # Where ``paths`` are: a local directory, or "s3://bucket/prefix/" (ending in "/"); every file
    # opened stays inside it (engine/confine.py) and is named relative to it in logs and errors.
    # "": the paths are local paths or s3:// URLs as given (the CLI: the operator's own files).
    root: str = ""
    endpoint: Endpoint | None = None  # SYNC / SCAN (a cluster source is detected by itself)
    s3: S3Settings | None = None  # how to reach s3:// paths (None: boto3's own lookup)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    incremental: bool = False  # SYNC: keep applying the command stream until stopped
    replace: bool = True  # keys already in the target are replaced (False: kept and counted)
    rewrite: bool = False  # always send plain commands instead of RESTORE payloads
    # Values above this are sent in chunks of plain commands. 8 MiB keeps the importer under
    # 150 MB RSS on the big-key benchmark (four 8-45 MB values): 147 MB measured, 380 MB at 64 MiB.
    big_key_bytes: int = 8 << 20
    chunk_elements: int = 1000  # elements per command when a value is sent in chunks
    bandwidth_mb: float | None = None  # MB/s read from the source; None: unlimited
    resume_mode: ResumeMode = ResumeMode.AUTO
    db_mode: DbMode = DbMode.KEEP
    db: int | None = None  # with DbMode.ONLY: the source db to migrate
    target_db: int | None = None  # with DbMode.ONLY: where it goes (default: same index)
    flush_target: bool = False  # FLUSHALL the target before the full phase
    max_bytes_in_flight: int = 8 << 20  # writer back-pressure budget (no measurable loss vs 64 MiB)
    # Runs of whole key records become RESTORE commands in C (formats/rdb/_walk.c), and the
    # replication stream is framed in C (protocol/_frames.c), where they are built; False: the
    # pure-Python paths make the same bytes (CACHEMIGRATE_PURE_PYTHON=1).
    c_walker: bool = True
    # A stopped run may be resumed from its checkpoint later (the service, CLI --checkpoint): the
    # target keeps the exactly-once marker until then. False: a stop is the end of the migration,
    # and the marker is removed like at the end of a finished run (engine/exactly_once.py).
    resumable: bool = True
    # What moves and under which name (engine/filter_rules.py, docs/filters.md); None: everything.
    filters: FilterRules | None = None


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    source: SourceSpec
    target: Endpoint
    options: PipelineOptions = field(default_factory=PipelineOptions)
    name: str = ""  # for log lines

# Endpoint, NetworkPolicy, UNREACHABLE (how a policy'd failure reads) and split_host_port are
# re-exported: the service layer builds endpoints without importing protocol/.
__all__ = [
    "UNREACHABLE",
    "DbMode",
    "Endpoint",
    "NetworkPolicy",
    "PipelineOptions",
    "PipelineSpec",
    "ResumeMode",
    "S3Settings",
    "SourceKind",
    "SourceSpec",
    "split_host_port",
]
