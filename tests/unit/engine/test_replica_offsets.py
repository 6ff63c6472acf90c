"""Internal offsets of a replica and the checkpoints they stand for (readers/sync_offsets.py)."""

from __future__ import annotations

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.commands import CommandMapper
from cachemigrate.engine.readers.sync_offsets import ReplicaOffsets
from cachemigrate.engine.spec import PipelineOptions

SRC = "127.0.0.1:7000"


def test_the_checkpoint_is_full_until_the_whole_rdb_is_applied() -> None:
    at = ReplicaOffsets(SRC, CommandMapper(PipelineOptions()), None)
    assert at.checkpoint(0) is None and at.position(0) is None
    end, moved = at.begin_full(1000)
    assert (end, moved) == (1000, False)
    assert at.checkpoint(999) == Checkpoint(SRC, "", 1000, phase="full")
    at.end_full("r1", stream_db=2)
    assert at.delivered == 1000
    assert at.checkpoint(1000) == Checkpoint(SRC, "r1", 1000, phase="incremental", extra={"db": 2})
    at.mapper.map([b"SELECT", b"5"], 1040)
    assert at.position(1050) == Checkpoint(SRC, "r1", 1050, phase="incremental", extra={"db": 5})
    assert at.position(1020) == Checkpoint(SRC, "r1", 1020, phase="incremental", extra={"db": 2})


def test_a_resync_to_a_lower_offset_moves_the_base_above_what_was_handed_out() -> None:
    at = ReplicaOffsets(SRC, CommandMapper(PipelineOptions()), None)
    at.begin_full(5000)
    at.end_full("r1", 0)
    at.delivered = 6000
    end, moved = at.begin_full(10)  # the source restarted: a new history from offset 10
    assert moved and end == 6001 and at.base == 5991
    assert at.replication(end) == 10 and at.internal(10) == end
    assert at.checkpoint(6000) == Checkpoint(SRC, "", 10, phase="full")
    at.end_full("r2", 0)
    assert at.checkpoint(6001 + 5) == Checkpoint(SRC, "r2", 15, phase="incremental", extra={"db": 0})


def test_a_start_in_the_incremental_phase_is_the_floor() -> None:
    start = Checkpoint(SRC, "r1", 700, phase="incremental", extra={"db": 3})
    at = ReplicaOffsets(SRC, CommandMapper(PipelineOptions()), start)
    assert (at.replid, at.delivered, at.mapper.db_at(700)) == ("r1", 700, 3)
    assert at.checkpoint(0) == Checkpoint(SRC, "r1", 700, phase="incremental", extra={"db": 3})
    full = Checkpoint(SRC, "r0", 50, phase="full")
    assert ReplicaOffsets(SRC, CommandMapper(PipelineOptions()), full).checkpoint(0) is full
