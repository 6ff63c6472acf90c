"""The scale curve (issue 15, item 4): the full-copy paths and their references at several scales.

    python -m benchmarks.scale [--scales 100000,1000000,3000000] [--repeat 3] [--keep-datasets]
    make bench-scale [SCALES=100000,1000000,3000000] [REPEAT=3]

For each scale, in one session and in alternating rounds (each round runs all five once, so the
machine's load falls on every column alike): REF ingest, REF load, `cachemigrate import` of the
source's RDB, REF repl and `cachemigrate migrate` (full sync). One table at the end: seconds
(min/median/max over the rounds), the time ratios ours/reference (median, and min-max of the
per-round ratios), our CPU seconds per 1M keys and our peak RSS. Cost linear in keys shows as
flat ratios and flat CPU per 1M keys; bounded memory as a flat peak RSS.

A time ratio here is cachemigrate seconds / reference seconds (below 1.0: faster than the
reference) — the inverse of `benchmarks.run`'s throughput ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.cli_run import into_fresh_target
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

COLUMNS = ("ingest", "load", "import", "repl", "sync")
RATIOS = (("import", "ingest"), ("import", "load"), ("sync", "repl"), ("sync", "load"))


@dataclass
class ScaleRuns:
    scale: int
    keys: int = 0
    rdb_mb: float = 0.0
    runs: dict[str, list[Timing]] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    def secs(self, col: str) -> list[float]:
        return [t.seconds for t in self.runs[col]]

    def ratios(self, ours: str, ref: str) -> list[float]:
        return [a / b for a, b in zip(self.secs(ours), self.secs(ref), strict=True)]

    def cpu_per_m(self, col: str) -> list[float]:
        return [t.cpu["cachemigrate"] / (self.keys / 1e6) for t in self.runs[col]]

    def rss(self, col: str) -> list[float]:
        return [t.peak_rss_mb or 0.0 for t in self.runs[col]]


def spread(xs: list[float], fmt: str = ".2f") -> str:
    """median [min-max]"""
    return f"{statistics.median(xs):{fmt}} [{min(xs):{fmt}}-{max(xs):{fmt}}]"


def bench_scale(work: Path, scale: int, repeat: int, *, keep_dataset: bool) -> ScaleRuns:
    existed = (BENCH_DIR / f"load-{scale}.resp").exists()
    t0 = time.perf_counter()
    resp = dataset(scale, False, 0)
    src = source_server(work, resp)
    out = ScaleRuns(scale)
    try:
        out.keys = keys = int(src.client().dbsize())
        rdb = work / "dump.rdb"
        shutil.move(src.save(), rdb)
        out.rdb_mb = rdb.stat().st_size / 1e6
        restore = restore_file(src, work / "restore.resp")
        resp_mb = restore.stat().st_size / 1e6
        print(f"\n== {keys:,} keys; RDB {out.rdb_mb:.0f} MB, RESTORE file {resp_mb:.0f} MB"
              f" (set up in {time.perf_counter() - t0:.0f} s) ==", flush=True)

        def imp(i: int) -> Timing:
            return into_fresh_target(work, f"imp{i}", "cachemigrate import (file)", keys,
                                     lambda url: ["import", str(rdb), "--target", url, "--quiet"])

        def sync(i: int) -> Timing:
            return into_fresh_target(work, f"sync{i}", "cachemigrate migrate (full sync)", keys,
                                     lambda url: ["migrate", src.url, url, "--quiet"])

        steps: dict[str, Callable[[int], Timing]] = {
            "ingest": lambda i: ref_ingest(work, restore, str(i)),
            "load": lambda i: ref_load(work, rdb, keys),
            "import": imp,
            "repl": lambda i: ref_repl(work, src, keys, str(i)),
            "sync": sync,
        }
        for i in range(repeat):
            line = []
            for col in COLUMNS:
                t = steps[col](i)
                out.runs[col].append(t)
                line.append(f"{col} {t.seconds:.2f}s")
            print(f"  round {i + 1}/{repeat}: " + ", ".join(line), flush=True)
        restore.unlink()
        rdb.unlink()
    finally:
        src.stop()
        shutil.rmtree(src.directory, ignore_errors=True)
        if not keep_dataset and not existed:
            resp.unlink(missing_ok=True)
    return out


def table(results: list[ScaleRuns], repeat: int) -> str:
    lines = [f"seconds: median [min-max] of {repeat} rounds; ratio = cachemigrate seconds / reference "
             "seconds (median [min-max] of the per-round ratios; flat across scales = cost linear in keys)",
             ""]
    head = f"{'keys':>10} {'RDB MB':>7} | " + " | ".join(f"{c:^18}" for c in
                                                         ("REF ingest s", "REF load s", "import s",
                                                          "REF repl s", "sync s"))
    lines += [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.keys:>10,} {r.rdb_mb:>7.0f} | " + " | ".join(f"{spread(r.secs(c)):^18}"
                                                                      for c in COLUMNS))
    lines.append("")
    head = f"{'keys':>10} | " + " | ".join(f"{o + '/' + ref:^18}" for o, ref in RATIOS)
    lines += [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.keys:>10,} | " + " | ".join(f"{spread(r.ratios(o, ref)):^18}" for o, ref in RATIOS))
    lines.append("")
    head = (f"{'keys':>10} | {'import CPU s/1M keys':^22} | {'sync CPU s/1M keys':^22} | "
            f"{'import peak RSS MB':^22} | {'sync peak RSS MB':^22}")
    lines += [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.keys:>10,} | {spread(r.cpu_per_m('import')):^22} | "
                     f"{spread(r.cpu_per_m('sync')):^22} | "
                     f"{spread(r.rss('import'), '.0f'):^22} | {spread(r.rss('sync'), '.0f'):^22}")
    lines.append("")
    lines.append("CPU s of the other processes per 1M keys (median): " + "; ".join(
        f"{r.keys:,} keys: " + ", ".join(
            f"{col} {name} {statistics.median(t.cpu[name] for t in r.runs[col]) / (r.keys / 1e6):.2f}"
            for col in COLUMNS for name in r.runs[col][0].cpu if name != "cachemigrate")
        for r in results))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="100000,1000000,3000000",
                    help="comma-separated key counts of the reference dataset")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per scale")
    ap.add_argument("--keep-datasets", action="store_true",
                    help="keep the generated bench-out/load-N.resp files (by default the ones this run "
                         "generated are deleted: 3M keys is ~4 GB)")
    a = ap.parse_args()
    scales = [int(s.replace("_", "")) for s in a.scales.split(",") if s.strip()]
    BENCH_DIR.mkdir(exist_ok=True)
    results = []
    t0 = time.perf_counter()
    for scale in scales:
        with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
            results.append(bench_scale(Path(tmp), scale, a.repeat, keep_dataset=a.keep_datasets))
        # After every scale, so a run stopped before its largest scale still leaves a table.
        done = "in all" if len(results) == len(scales) else f"so far, {len(results)} of {len(scales)} scales"
        print(f"\n== scale curve ({time.perf_counter() - t0:.0f} s {done}) ==")
        print(table(results, a.repeat), flush=True)


if __name__ == "__main__":
    main()
