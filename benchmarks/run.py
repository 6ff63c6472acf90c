"""`make bench`: cachemigrate beside Redis's own ingest, load and replica sync, in one run.

    python -m benchmarks.run [--scale 1000000] [--repeat 3] [--bigkey-elems 1000000] [--skip-online]
                             [--skip-bigkeys] [--skip-service] [--skip-cutover] [--skip-filtered]
                             [--catchup-writes 1000000]

Every figure is a ratio to a reference measured in the same run (these machines are noisy):
throughput ratio = reference seconds / cachemigrate seconds (above 1.0: faster than the reference).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.bucket import MotoServer, import_from_bucket
from benchmarks.catchup import bench_catchup
from benchmarks.cli_run import into_fresh_target
from benchmarks.filtered import bench_filtered
from benchmarks.incremental import bench_incremental
from benchmarks.refs import (
    BENCH_DIR,
    Timing,
    dataset,
    ref_ingest,
    ref_load,
    ref_repl,
    restore_file,
    source_server,
)
from benchmarks.service_bucket import bench_service_import
from benchmarks.sustained import bench_sustained


def measure(n: int, fn: Callable[[int], Timing]) -> Timing:
    return median([fn(i) for i in range(n)])


def median(runs: list[Timing]) -> Timing:
    runs = sorted(runs, key=lambda t: t.seconds)
    med = runs[len(runs) // 2]
    med.note = "runs: " + ", ".join(f"{t.seconds:.2f}s" for t in runs)
    return med


def row(t: Timing, ref: Timing | None = None) -> str:
    ratio = f"{ref.seconds / t.seconds:5.2f}x" if ref else "   ref"
    cpu = " ".join(f"{k}={v:.2f}s" for k, v in t.cpu.items())
    rss = f" peakRSS={t.peak_rss_mb:.0f}MB" if t.peak_rss_mb else ""
    return f"  {t.name:<40} {t.seconds:7.2f}s {ratio}   cpu: {cpu}{rss}   ({t.note})"


def bench_import(
    work: Path, *, scale: int, repeat: int, bigkey_elems: int = 0, online: bool, service: bool = False,
    filtered: bool = False,
) -> None:
    """File import (local and bucket, through the CLI and the service) and full sync; with
    ``bigkey_elems`` the dataset adds 4 big keys of that many elements."""
    bigkeys, elems = bigkey_elems > 0, bigkey_elems
    resp = dataset(scale, bigkeys, elems)
    src = source_server(work, resp)
    try:
        keys = int(src.client().dbsize())
        rdb = work / "dump.rdb"
        shutil.copy(src.save(), rdb)
        label = f"{keys} keys{' + 4 big keys of ' + str(elems) + ' elements' if bigkeys else ''}"
        print(f"\n== dataset: {label}; RDB {rdb.stat().st_size / 1e6:.0f} MB ==", flush=True)
        restore = restore_file(src, work / "restore.resp")
        ingest = measure(repeat, lambda i: ref_ingest(work, restore, str(i)))
        load = measure(repeat, lambda i: ref_load(work, rdb, keys))

        def one_import(i: int) -> Timing:
            return into_fresh_target(work, f"imp{i}", "cachemigrate import (file)", keys,
                                     lambda url: ["import", str(rdb), "--target", url, "--quiet"])

        imp = measure(repeat, one_import)
        print(row(ingest))
        print(row(load))
        print(row(imp, ingest) + "  <- vs REF ingest")
        print(f"  {'':<40} {'':>8} {load.seconds / imp.seconds:5.2f}x  <- vs REF load")
        if not bigkeys:
            moto = MotoServer()
            try:
                moto.upload("bench", "dump.rdb", rdb)
                s3imp = measure(repeat, lambda i: import_from_bucket(work, rdb, keys, moto, i))
                if service:
                    svc = bench_service_import(work, moto, keys, repeat)
            finally:
                moto.stop()
            print(row(s3imp, ingest) + "  <- vs REF ingest")
            if service:
                print(row(median(list(svc.runs)), ingest) + "  <- vs REF ingest")
                print(f"  {'':<40} {svc.summary()}")
        if online:
            repl = measure(repeat, lambda i: ref_repl(work, src, keys, str(i)))

            def one_sync(i: int) -> Timing:
                return into_fresh_target(work, f"sync{i}", "cachemigrate migrate (full sync)", keys,
                                         lambda url: ["migrate", src.url, url, "--quiet"])

            sync = measure(repeat, one_sync)
            print(row(repl))
            print(row(sync, repl) + "  <- vs REF repl")
        if filtered:
            bench_filtered(work, src, rdb, keys, online=online)
    finally:
        src.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bigkey-elems", type=int, default=1_000_000)
    ap.add_argument("--skip-online", action="store_true")
    ap.add_argument("--skip-bigkeys", action="store_true")
    ap.add_argument("--skip-service", action="store_true",
                    help="skip the bucket import through `cachemigrate serve`")
    ap.add_argument("--incremental-seconds", type=float, default=20.0)
    ap.add_argument("--catchup-writes", type=int, default=1_000_000,
                    help="REF catch-up: the backlog of SETs drained by a native replica and by us")
    ap.add_argument("--skip-cutover", action="store_true",
                    help="skip exchange-ip / rollback-ip through the service (cutover.py --service)")
    ap.add_argument("--skip-filtered", action="store_true", help="skip the filter-rules runs")
    a = ap.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        work = Path(tmp)
        bench_import(work / "plain", scale=a.scale, repeat=a.repeat, online=not a.skip_online,
                     service=not a.skip_service, filtered=not a.skip_filtered)
        if not a.skip_online:
            print(f"\n== REF catch-up: a backlog of {a.catchup_writes:,} SETs (64-byte values), "
                  "native replica vs migrate --incremental ==", flush=True)
            bench_catchup(work / "catchup", a.catchup_writes, a.repeat)
            print("\n== sustained load: the highest write rate with lag under 1 s ==", flush=True)
            bench_sustained(work / "sustained", [50_000, 100_000, 150_000, 200_000, 300_000, 400_000], 5.0)
            print("\n== online incremental sync under write load ==", flush=True)
            bench_incremental(work / "incr", seconds=a.incremental_seconds)
        if not a.skip_bigkeys:
            bench_import(work / "big", scale=a.scale, repeat=1, bigkey_elems=a.bigkey_elems, online=False)
        if not a.skip_cutover:
            print("\n== exchange-ip / rollback-ip through the service, 3,000 writes/s through the front ==",
                  flush=True)
            subprocess.run([sys.executable, "-m", "benchmarks.cutover", "--service", "--scale", str(a.scale),
                            "--rate", "1500", "--rounds", "1"], check=False)
    print("\nratio = reference seconds / cachemigrate seconds; medians of", a.repeat, "runs;",
          "CPU seconds per process during each measurement.")


if __name__ == "__main__":
    main()
