"""CPU of the pipeline alone (no interpreter start-up, no CLI imports), in-process, per key.

    python -m benchmarks.pipeline_cpu [--rdb bench-out/dump-200k.rdb] [--mode import|migrate] [--repeat 3]

Each run goes into a fresh target; ``migrate`` serves the RDB from a diskless source. CPU
seconds are this process's (``time.process_time``), beside the target's and source's: on a noisy
machine compare the minimum over runs, and interleave the variants you compare.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.refs import BENCH_DIR, RedisServer, cpu_seconds, start_redis
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import LogLevel, StatusSnapshot
from cachemigrate.protocol.endpoint import Endpoint


class _Quiet:
    def log(self, level: LogLevel, message: str) -> None:
        pass

    def status(self, snapshot: StatusSnapshot) -> None:
        pass


def one(work: Path, i: int, rdb: Path, src: RedisServer | None) -> str:
    tgt = start_redis(work / f"target-{i}")
    try:
        if src is None:
            source = SourceSpec(SourceKind.RDB_FILES, paths=(str(rdb),))
        else:
            source = SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(src.url))
        spec = PipelineSpec(source=source, target=Endpoint.from_url(tgt.url), options=PipelineOptions(),
                            name="bench")
        t_cpu, s_cpu = cpu_seconds(tgt.proc.pid), cpu_seconds(src.proc.pid) if src else 0.0
        c0, w0 = time.process_time(), time.perf_counter()
        asyncio.run(run_pipeline(spec, events=_Quiet()))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        keys = int(tgt.client().dbsize())
        extra = f" source={cpu_seconds(src.proc.pid) - s_cpu:.2f}s" if src else ""
        return (f"wall {wall:.2f}s  cpu {cpu:.2f}s = {cpu / max(keys, 1) * 1e6:.1f} us/key  "
                f"target={cpu_seconds(tgt.proc.pid) - t_cpu:.2f}s{extra}  keys {keys}")
    finally:
        tgt.stop()
        shutil.rmtree(tgt.directory, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rdb", type=Path, default=BENCH_DIR / "dump-200k.rdb")
    ap.add_argument("--mode", choices=("import", "migrate"), default="import")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        work = Path(tmp)
        src = None
        if a.mode == "migrate":
            (work / "source").mkdir()
            shutil.copy(a.rdb, work / "source" / "dump.rdb")
            src = start_redis(work / "source", args=["--repl-diskless-sync", "yes",
                                                     "--repl-diskless-sync-delay", "0"])
        try:
            for i in range(a.repeat):
                print(f"{a.mode}: {one(work, i, a.rdb, src)}", flush=True)
        finally:
            if src is not None:
                src.stop()


if __name__ == "__main__":
    main()
