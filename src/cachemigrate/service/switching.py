"""exchange-ip and rollback-ip of a task (spec §6.14, §6.15, §9.5): the service's side of the
cutover. The sequence itself is engine/cutover.py's, run over the task's running migration
(service/runner.py holds it as a ``LiveMigration``); this module checks a request, runs the
verification gate, and records each step in the task's log and status.

States (``task_status``; ``status`` in brackets):

* exchange-ip of an INCRMIGEATING task never switched (or after EXCHANGE_FAILED, ROLLBACK_SUCCESS):
  EXCHANGING, then EXCHANGE_SUCCESS [TERMINATED: the migration source -> target has ended] with
  the reverse sync target -> source running as the task's run, or EXCHANGE_FAILED
  [INCRMIGEATING] with everything as it was (no front moved, the migration goes on).
* rollback-ip after EXCHANGE_SUCCESS (or ROLLBACK_FAILED): ROLLBACKING, then ROLLBACK_SUCCESS
  [INCRMIGEATING: the migration source -> target runs again, from where the reverse sync
  stopped], or ROLLBACK_FAILED [TERMINATED] with the reverse sync going on.

Which way the task's run goes is where its checkpoint's source is (one checkpoint per task: the
cutover saves the reverse sync's start over the stopped migration's last position), so a
restart of the service resumes the right one, and settles a switch it interrupted by it.

The verification gate (Settings.exchange_verify: sampled, full, off) runs engine/verify.py
before anything is paused; mismatches left after its re-checks fail the exchange with the
report's counts in the log. The stopped direction's offset marker is removed from its target
once a switch is done (a marker the next run in that direction would write again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachemigrate.engine.fronts import Front
from cachemigrate.engine.fronts.base import resolve
from cachemigrate.engine.spec import Endpoint
from cachemigrate.engine.status import EventSink, LogLevel, NullSink
from cachemigrate.errors import CacheMigrateError, CutoverError, FrontError
from cachemigrate.service import fronts as fr
from cachemigrate.service import states as st
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db import repo
from cachemigrate.service.db.models import Task
from cachemigrate.service.db.session import Database
from cachemigrate.service.endpoints import endpoint_of
from cachemigrate.service.settings import Settings
from cachemigrate.service.tasklogs import LogLine

if TYPE_CHECKING:
    from cachemigrate.engine.checkpoint import CheckpointStore
    from cachemigrate.engine.live import LiveMigration

log = logging.getLogger(__name__)

EXCHANGE, ROLLBACK = "exchange-ip", "rollback-ip"
GATE_ROUNDS = 5  # re-checks of a difference before the gate counts it (in-flight writes converge)
MARKER_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class SwitchRequest:
    """What the request asked for, checked (service/tasks.py): the fronts to move."""

    operation: str  # EXCHANGE or ROLLBACK
    fronts: tuple[Mapping[str, Any], ...]  # front descriptions (service/fronts.py)
    project_id: str


def _line(level: str, code: str, message: str) -> LogLine:
    return LogLine(level, code, message, [])


class Switcher:
    """Runs a requested switch inside the task's run (Runner._run_live calls ``switch``)."""

    def __init__(self, db: Database, settings: Settings, cipher: Cipher) -> None:
        self.db = db
        self.settings = settings
        self.cipher = cipher

    async def switch(
        self, task_id: str, live: LiveMigration, store: CheckpointStore, request: SwitchRequest,
        events: EventSink, stop: asyncio.Event,
    ) -> LiveMigration:
        """Do the switch; the migration that runs afterwards (the one in the other direction on
        success, ``live`` again otherwise). Its end is in the task's status and log, never raised."""
        from cachemigrate.engine.cutover import CutoverOptions, cutover

        exchange = request.operation == EXCHANGE
        word = request.operation
        try:
            opened = [await fr.open_front(d, self.settings, request.project_id) for d in request.fronts]
            in_flight = await self._gate(task_id, live, events) if exchange else []
            options = CutoverOptions(max_pause=self.settings.exchange_max_pause_seconds,
                                     catch_up_timeout=self.settings.exchange_catch_up_seconds)
            events.log(LogLevel.INFO, f"{word}: pausing the writes of {live.source.address} (at most "
                       f"{options.max_pause:g} s) to move {', '.join(f.name for f in opened)}")
            new_live, report = await cutover(live, opened, reverse_store=store, options=options,
                                             events=events, stop=stop, check_keys=in_flight)
        except CacheMigrateError as exc:
            message = f"{word} failed, nothing moved (the writes go to {live.source.address} as " \
                      f"before): {exc}"
            await self._record(task_id, request, ok=False, line=_line("ERROR", f"{_code(word)}.failed",
                                                                       message), error=str(exc))
            return live
        timeline = ", ".join(f"{step} {ms:.1f}" for step, ms in report.timeline)
        moved = "; ".join(report.moved)
        message = (f"{word} done: writes paused {report.paused_ms:.1f} ms (ms after the pause: "
                   f"{timeline}); {moved}; now syncing {report.new} -> {report.old} (from offset "
                   f"{report.reverse_from.offset})")
        if report.failed:
            message += "; NOT switched (switch them by hand): " + "; ".join(report.failed)
        await self._record(task_id, request, ok=True, line=_line("INFO", f"{_code(word)}.done", message))
        await self._drop_marker(live)
        return new_live

    async def _gate(
        self, task_id: str, live: LiveMigration, events: EventSink
    ) -> list[tuple[int, int, bytes]]:
        """The verification before the pause: CutoverError when keys still differ; the keys that
        kept changing, which the cutover compares inside its pause."""
        mode = self.settings.exchange_verify
        if mode == "off":
            events.log(LogLevel.INFO, "exchange-ip: verification gate off (exchange_verify)")
            return []
        from cachemigrate.engine.verify import verify

        sample = self.settings.exchange_verify_sample if mode == "sampled" else None
        what = f"{sample} sampled keys" if sample else "every key"
        events.log(LogLevel.INFO, f"exchange-ip: verifying {what} of {live.spec.target.address} "
                   f"against {live.source.address}")
        report = await verify(live.source, live.spec.target, sample=sample, rounds=GATE_ROUNDS,
                              repair=False, events=NullSink())
        counts = ", ".join(f"{kind.value} {n}" for kind, n in report.by_kind.items() if n) or "none"
        summary = f"{report.keys_compared} keys compared, {report.mismatches} differ ({counts})"
        if report.in_flight:
            summary += f", {len(report.in_flight)} in flight (compared again in the pause)"
        if not report.ok:
            examples = ", ".join(f"{e.key.decode('utf-8', 'backslashreplace')!r} ({e.kind.value})"
                                 for e in report.examples[:5])
            raise CutoverError(f"verification gate: {summary}; e.g. {examples}. Repair them (POST "
                               ".../verifications with repair) or find who writes to the target")
        events.log(LogLevel.INFO, f"exchange-ip: verification gate passed: {summary}")
        return report.in_flight

    async def _record(self, task_id: str, request: SwitchRequest, *, ok: bool, line: LogLine,
                      error: str | None = None) -> None:
        exchange = request.operation == EXCHANGE
        if exchange:
            ending = st.EXCHANGE_SUCCESS if ok else st.EXCHANGE_FAILED
            status, during = st.TERMINATED, st.EXCHANGING
        else:
            ending = st.ROLLBACK_SUCCESS if ok else st.ROLLBACK_FAILED
            status, during = st.INCRMIGEATING, st.ROLLBACKING
        fields: dict[str, Any] = {"task_status": ending}
        if ok:  # a failed switch leaves the status as it was
            fields.update(status=status, error_message=None)
        if error is not None:
            fields["error_message"] = error[:4000]
        allowed = [st.INCRMIGEATING, st.TERMINATED]
        await self.db.call(repo.set_switch_state, task_id=task_id, statuses=allowed, task_statuses=[during],
                           entry=line.row(), **fields)

    async def _drop_marker(self, stopped: LiveMigration) -> None:
        """The stopped direction's offset marker leaves its target (engine/exactly_once.py)."""
        from cachemigrate.engine.exactly_once import remove_marker

        try:
            await asyncio.wait_for(remove_marker(stopped.spec.target, stopped.source.address), MARKER_TIMEOUT)
        except (CacheMigrateError, OSError, TimeoutError) as exc:
            stopped.events.log(LogLevel.WARNING, f"the offset marker stays in {stopped.spec.target.address}: "
                               f"{exc}")

    # --- after a restart -------------------------------------------------------------------------

    async def settle(self, task: Task, reverse: bool) -> None:
        """A switch the service's stop interrupted: its end is where the checkpoint is."""
        if task.task_status not in st.SWITCHING:
            return
        exchange = task.task_status == st.EXCHANGING
        done = reverse if exchange else not reverse
        word = EXCHANGE if exchange else ROLLBACK
        request = SwitchRequest(word, (), task.project_id)
        how = "done" if done else "failed, nothing moved"
        line = _line("INFO" if done else "ERROR", f"{_code(word)}.{'done' if done else 'failed'}",
                     f"the service restarted during {word}: {how}")
        await self._record(task.id, request, ok=done, line=line,
                           error=None if done else f"the service restarted during {word}")

    def endpoints(self, task: Task) -> tuple[Endpoint, Endpoint]:
        network = self.settings.network_policy(task.project_id)
        assert task.source is not None and task.target is not None
        decrypt = self.cipher.decrypt_optional
        return (endpoint_of(task.source, decrypt(task.source_password_enc), network=network),
                endpoint_of(task.target, decrypt(task.target_password_enc), network=network))


async def points_at(front: Front, server: Endpoint) -> bool:
    """Whether ``front`` forwards to ``server`` now (FrontError when it cannot be read)."""
    at = await front.backend()
    if at.port != server.port:
        return False
    return at.host == server.host or bool(set(await resolve(at.host)) & set(await resolve(server.host)))


def _code(word: str) -> str:
    return "migration.exchange" if word == EXCHANGE else "migration.rollback"


__all__ = ["EXCHANGE", "ROLLBACK", "FrontError", "SwitchRequest", "Switcher", "points_at"]
