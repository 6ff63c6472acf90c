"""Writer micro-benchmark: StandaloneWriter vs `redis-cli --pipe` on the same RESTORE commands.

    .venv/bin/python -m benchmarks.bench_writer --scale 200000 --repeat 3

Builds the reference dataset into a source server, DUMPs every key into a RESTORE file (the REF
ingest input), then alternates: REF ingest into an empty target, and the StandaloneWriter sending
the same commands (as Command entries built beforehand, outside the timing) into another empty
target. Reports medians and the ratio (REF seconds / ours: >= 1 means at least as fast).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.refs import BENCH_DIR, cpu_seconds, dataset, ref_ingest, restore_file, source_server
from cachemigrate.engine.entry import Command
from cachemigrate.engine.writers import StandaloneWriter, WriterOptions
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.resp import parse_commands
from support.servers import start_redis


def load_entries(restore: Path) -> list[Command]:
    """The RESTORE file as entries (SELECT lines become the entries' db)."""
    data = restore.read_bytes()
    commands, _, consumed = parse_commands(data)
    assert consumed == len(data)
    entries: list[Command] = []
    db = 0
    for argv in commands:
        if argv[0] == b"SELECT":
            db = int(argv[1])
            continue
        entries.append(Command(argv, db=db, key=argv[1], tag="key", source_offset=len(entries) + 1))
    return entries


async def write_all(port: int, entries: list[Command], chunk: int, options: WriterOptions) -> float:
    w = StandaloneWriter(Endpoint(port=port), options)
    await w.start()
    t0 = time.perf_counter()
    c0 = os.times()
    for i in range(0, len(entries), chunk):
        await w.write(entries[i : i + chunk])
    await w.flush()
    secs = time.perf_counter() - t0
    c1 = os.times()
    print(f"  writer process cpu: user {c1.user - c0.user:.2f} s, system {c1.system - c0.system:.2f} s")
    await w.close()
    if w.stats.commands_failed or w.stats.commands_written != len(entries):
        raise RuntimeError(f"writer: {w.stats} {w.failures[:3]}")
    return secs


def ours(
    work: Path, entries: list[Command], tag: str, chunk: int, options: WriterOptions
) -> tuple[float, float]:
    tgt = start_redis(work / f"ours-{tag}")
    try:
        before = cpu_seconds(tgt.proc.pid)
        secs = asyncio.run(write_all(tgt.port, entries, chunk, options))
        if tgt.client().dbsize() != len(entries):
            raise RuntimeError("keys missing on the target")
        return secs, cpu_seconds(tgt.proc.pid) - before
    finally:
        tgt.stop()
        shutil.rmtree(tgt.directory, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=2000, help="entries per write() call")
    ap.add_argument("--batch-kib", type=int, default=2048, help="bytes per socket write")
    ap.add_argument("--python-reader", action="store_true", help="no hiredis for replies")
    args = ap.parse_args()
    options = WriterOptions(batch_bytes=args.batch_kib << 10, accelerated=not args.python_reader)
    work = Path(tempfile.mkdtemp(prefix="bench-writer-"))
    try:
        restore = BENCH_DIR / f"restore-{args.scale}.resp"
        if not restore.exists():
            src = source_server(work, dataset(args.scale, False, 0))
            try:
                restore_file(src, work / "restore.resp").replace(restore)
            finally:
                src.stop()
        entries = load_entries(restore)
        # In a pipeline, entries live for one batch; here 200k of them live for the whole run:
        # keep them out of the cyclic GC's full collections (one costs ~0.1-0.4 s).
        gc.collect()
        gc.freeze()
        print(f"{len(entries)} RESTORE entries, {restore.stat().st_size / 1e6:.0f} MB of commands")
        refs, mine = [], []
        for i in range(args.repeat):
            r = ref_ingest(work, restore, f"r{i}")
            o, target_cpu = ours(work, entries, f"o{i}", args.chunk, options)
            refs.append(r.seconds)
            mine.append(o)
            print(f"run {i}: REF ingest {r.seconds:.2f} s (target cpu {r.cpu['target']:.2f} s), "
                  f"writer {o:.2f} s (target cpu {target_cpu:.2f} s), ratio {r.seconds / o:.2f}")
        ref, our = statistics.median(refs), statistics.median(mine)
        print(f"median: REF ingest {ref:.2f} s = {len(entries) / ref:,.0f} keys/s; writer {our:.2f} s = "
              f"{len(entries) / our:,.0f} keys/s; ratio of medians {ref / our:.2f}, median of paired "
              f"ratios {statistics.median(r / o for r, o in zip(refs, mine, strict=True)):.2f}, best vs "
              f"best {min(refs) / min(mine):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
