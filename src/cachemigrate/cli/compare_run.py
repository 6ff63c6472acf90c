"""What `cachemigrate compare` does once its arguments are parsed: engine/verify.py, a summary.

Exit 0 when no key differs after the re-checks (and the repair), else 1 with one line on stderr;
the summary (or with --json the report as JSON) goes to stdout.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from cachemigrate.cli.migrate_run import LiveSink
from cachemigrate.cli.progress import stdout_console
from cachemigrate.engine.differences import Kind
from cachemigrate.engine.spec import Endpoint, PipelineOptions
from cachemigrate.engine.verify import VerifyReport, verify
from cachemigrate.errors import ConfigError, MigrationError

if TYPE_CHECKING:
    from cachemigrate.engine.filter_rules import FilterRules

_KIND_WORDS = {
    Kind.MISSING: "missing in target",
    Kind.EXTRA: "extra in target",
    Kind.TYPE: "type differs",
    Kind.VALUE: "value differs",
    Kind.TTL: "ttl differs",
}


def run_compare(
    *,
    source: str,
    target: str,
    sample: int | None = None,
    rounds: int = 3,
    delay: float = 0.5,
    repair: bool = False,
    json_output: bool = False,
    ttl_tolerance_ms: int = 1000,
    filters: FilterRules | None = None,
) -> None:
    """The options of compare_cmd.compare_servers, by the same names (``filters``: the rules
    of its filter options)."""
    if sample is not None and sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {sample}")
    if rounds < 0:
        raise ConfigError(f"--rounds must be 0 or more, got {rounds}")
    if delay < 0:
        raise ConfigError(f"--delay must be 0 or more seconds, got {delay:g}")
    if ttl_tolerance_ms < 0:
        raise ConfigError(f"--ttl-tolerance-ms must be 0 or more, got {ttl_tolerance_ms}")
    src, dst = Endpoint.from_url(source), Endpoint.from_url(target)
    options = PipelineOptions(filters=filters) if filters else None
    with LiveSink("compare", quiet=True) as sink:
        report = asyncio.run(verify(src, dst, sample=sample, rounds=rounds, delay=delay, repair=repair,
                                    ttl_tolerance_ms=ttl_tolerance_ms, events=sink, options=options))
    if json_output:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    if not report.ok:
        raise MigrationError(f"source and target differ: {report.mismatches:,} keys "
                             f"({_counts(report.by_kind)})")


def _counts(by_kind: dict[Kind, int]) -> str:
    return ", ".join(f"{_KIND_WORDS[k]} {by_kind[k]:,}" for k in Kind if by_kind.get(k)) or "none"


def print_report(report: VerifyReport) -> None:
    out = stdout_console()

    def say(text: str) -> None:
        out.print(text, highlight=False, soft_wrap=True)

    what = "every key" if report.mode == "full" else "a sample"
    say(f"keys compared: {report.keys_compared:,} ({what}) in {report.seconds:.1f} s")
    say(f"first pass: {sum(report.first_pass.values()):,} different ({_counts(report.first_pass)})")
    if report.rounds:
        say(f"re-checked: {report.rounds} round(s), {report.converged:,} matched then (writes in flight)")
    if report.repaired or report.repair_failed:
        say(f"repaired: {report.repaired:,} keys copied again from the source "
            f"({report.repair_failed:,} refused by the target)")
    if report.in_flight:
        say(f"in flight: {len(report.in_flight):,} keys changed on the source at every re-check "
            "(written faster than the re-checks; not judged, not repaired)")
    if report.untracked:
        say(f"not re-checked: {report.untracked:,} differences beyond the tracking limit")
    verdict = "[green]OK[/green]" if report.ok else "[red]DIFFERENT[/red]"
    out.print(f"mismatches: {report.mismatches:,} ({_counts(report.by_kind)}) {verdict}",
              highlight=False, soft_wrap=True)
    for m in report.examples:
        out.print(f"  db {m.db} {m.key!r}: {m.reason}", highlight=False, markup=False, soft_wrap=True)
