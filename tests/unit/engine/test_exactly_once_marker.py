"""Marker encoding and the choice between the checkpoint and the marker on resume."""

from __future__ import annotations

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.exactly_once import (
    MARKER_PREFIX,
    MARKER_STATE,
    REMOVED,
    Marker,
    marker_key,
    resume_point,
    target_lost,
)

CP = Checkpoint("10.0.0.1:6380", "a" * 40, 1000, extra={"db": 2})


def test_marker_round_trip_and_garbage() -> None:
    m = Marker("a" * 40, 1234, 5)
    assert Marker.decode(m.encode()) == m
    for raw in (b"", b"x", b"r 1", b"r x 1", b"r 1 2 3", b"\xff 1 2"):
        assert Marker.decode(raw) is None
    assert marker_key("10.0.0.1:6380") == MARKER_PREFIX + b"{10.0.0.1:6380}"


def test_marker_ahead_of_the_checkpoint_wins_with_its_db() -> None:
    got = resume_point(CP, Marker(CP.replid, 1500, 7))
    assert got is not None and (got.offset, got.extra["db"], got.replid) == (1500, 7, CP.replid)


def test_checkpoint_kept_when_the_marker_cannot_continue_it() -> None:
    assert resume_point(CP, None) is CP
    assert resume_point(CP, Marker(CP.replid, 1000, 7)) is CP  # where the checkpoint is
    assert resume_point(CP, Marker("b" * 40, 5000, 0)) is CP  # another history
    full = Checkpoint(CP.source, CP.replid, 1000, phase="full")
    assert resume_point(full, Marker(CP.replid, 5000, 0)) is full  # a full sync starts over
    assert resume_point(None, Marker(CP.replid, 5000, 0)) is None


def test_marker_behind_the_checkpoint_wins_too() -> None:
    """A target back from an older snapshot or AOF holds exactly what its marker says."""
    got = resume_point(CP, Marker(CP.replid, 900, 7))
    assert got is not None and (got.offset, got.extra["db"], got.phase) == (900, 7, "incremental")


def test_a_missing_marker_is_a_lost_target_unless_removed_on_purpose() -> None:
    assert target_lost(CP, None)
    assert not target_lost(CP, Marker(CP.replid, 1000, 2))
    removed = Checkpoint(CP.source, CP.replid, 1000, extra={"db": 2, MARKER_STATE: REMOVED})
    assert not target_lost(removed, None)
    assert not target_lost(Checkpoint(CP.source, CP.replid, 1000, phase="full"), None)
    assert not target_lost(None, None)
