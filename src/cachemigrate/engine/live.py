"""A running incremental migration that can be stopped and started again from its checkpoint
store: what the cutover (engine/cutover.py) stops, and starts in the other direction, and what the
service's task run holds (service/runner.py)."""

from __future__ import annotations

import asyncio
import dataclasses

from cachemigrate.engine.checkpoint import CheckpointStore
from cachemigrate.engine.pipeline import Pipeline
from cachemigrate.engine.spec import PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import EventSink, StatusSnapshot
from cachemigrate.errors import ConfigError, CutoverError
from cachemigrate.protocol.endpoint import Endpoint


class LiveMigration:
    """An incremental migration of ``spec`` (a SYNC source) that can be stopped and started
    again from its checkpoint store: what the cutover stops, and starts in the other direction."""

    def __init__(self, spec: PipelineSpec, *, events: EventSink, store: CheckpointStore) -> None:
        if spec.source.kind is not SourceKind.SYNC or spec.source.endpoint is None:
            raise ConfigError("a cutover needs an online migration of a replicated source")
        if not spec.options.incremental:
            raise ConfigError("a cutover needs an incremental migration")
        self.spec = spec
        self.source: Endpoint = spec.source.endpoint
        self.events = events
        self.store = store
        self.stop_event = asyncio.Event()
        self.pipeline: Pipeline | None = None
        self.task: asyncio.Task[StatusSnapshot] | None = None

    def start(self) -> None:
        """Run (again: from the store's checkpoint) in a task of the running loop."""
        self.stop_event = asyncio.Event()
        self.pipeline = Pipeline(self.spec, self.events, self.store, self.stop_event)
        self.task = asyncio.get_running_loop().create_task(self.pipeline.run())

    def running(self) -> Pipeline:
        """The pipeline, which must still run (its error raised if it ended with one)."""
        if self.pipeline is None or self.task is None:
            raise CutoverError(f"the migration {self._arrow()} is not running")
        if self.task.done():
            self.task.result()
            raise CutoverError(f"the migration {self._arrow()} has ended")
        return self.pipeline

    async def stop(self) -> StatusSnapshot | None:
        """Stop (what was read is written, the checkpoint saved); None when it never started."""
        if self.task is None:
            return None
        self.stop_event.set()
        return await self.task

    def _arrow(self) -> str:
        return f"{self.source.address} -> {self.spec.target.address}"


def reverse_spec(spec: PipelineSpec) -> PipelineSpec:
    """The migration in the other direction (target -> source) that a cutover of ``spec`` starts,
    and that a service resuming it after a restart runs again."""
    if spec.source.endpoint is None:
        raise ConfigError("a reverse sync needs a replicated source")
    old, new = spec.source.endpoint, spec.target
    return PipelineSpec(
        source=SourceSpec(SourceKind.SYNC, endpoint=new),
        target=old,
        options=dataclasses.replace(spec.options, flush_target=False),
        name=f"reverse sync {new.address} -> {old.address}",
    )
