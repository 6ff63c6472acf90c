"""Filter rules at full speed: import and full sync with a rule set that keeps half the keys.

    python -m benchmarks.filtered [--scale 1000000] [--repeat 1] [--skip-online]

The figure is seconds per kept key relative to the unfiltered run of the same path, in the same
run: (filtered seconds / kept keys) / (unfiltered seconds / all keys). 1.0: a key left behind
costs nothing; 2.0: it costs as much as a key moved. Rule sets: by name suffix (the key's
number even or odd: half of every type, asked by the C walker per key), the same with a prefix
rename of the strings and hashes, by type (every string left out: a type rule in the C walker;
the keys it keeps are the collections, bigger than the average key, so its figure per kept key
is not a like-for-like one), and one that keeps nothing:
its time is what every key costs when none is moved (the fixed cost plus the keys left out; for
a full sync, the source's RDB of every key), which bounds the ratio from below:
2 x (nothing kept) / (all keys) for a rule set keeping half. With ``--repeat`` the summary gives
medians. Also part of `make bench` (``--skip-filtered``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.cli_run import fresh_target, run_cli
from benchmarks.refs import BENCH_DIR, RedisServer, Timing, dataset, source_server

RULE_SETS = {
    # Every key of the reference dataset ends in its index: an even last digit is half of each type.
    "half by suffix": 'block_key_suffix = ["0", "2", "4", "6", "8"]\n',
    "half by suffix + rename": 'block_key_suffix = ["0", "2", "4", "6", "8"]\n'
                               'rename_prefix = { "cache:" = "c:", "user:" = "u:" }\n',
    "strings left out": 'block_type = ["string"]\n',  # 70% of the keys (a type rule, in C)
    "nothing kept": 'allow_key = ["no such key"]\n',
}


def _run(work: Path, tag: str, name: str, args: Callable[[str], list[str]]) -> tuple[Timing, int]:
    tgt = fresh_target(work, tag)
    try:
        t = run_cli(args(tgt.url), tgt, name)
        return t, int(tgt.client().dbsize())
    finally:
        tgt.stop()
        shutil.rmtree(tgt.directory, ignore_errors=True)


def bench_filtered(work: Path, src: RedisServer, rdb: Path, keys: int, *, repeat: int = 1,
                   online: bool = True) -> None:
    """The rule sets against the unfiltered run, import (and full sync), on a loaded source."""
    files = {}
    for label, text in RULE_SETS.items():
        files[label] = work / f"rules{len(files)}.toml"
        files[label].write_text(text, encoding="utf-8")
    print(f"\n== filter rules that keep half of {keys} keys: seconds per kept key vs all keys ==", flush=True)
    Make = Callable[[list[str]], Callable[[str], list[str]]]
    paths: list[tuple[str, Make]] = [
        ("import", lambda f: lambda url: ["import", str(rdb), *f, "--target", url, "--quiet"])]
    if online:
        paths.append(("full sync", lambda f: lambda url: ["migrate", src.url, url, *f, "--quiet"]))
    for path, args in paths:
        runs: dict[str, list[tuple[Timing, int]]] = {}
        for i in range(repeat):
            base, got = _run(work, f"{path}-all{i}", f"{path} (all keys)", args([]))
            if got != keys:
                raise RuntimeError(f"{path} wrote {got} keys, expected {keys}")
            runs.setdefault("all keys", []).append((base, keys))
            print(f"  {path:<10} all keys                {base.seconds:7.2f}s  {keys} keys  "
                  f"{base.seconds / keys * 1e6:6.2f} us/key        cpu cachemigrate="
                  f"{base.cpu['cachemigrate']:.2f}s target={base.cpu['target']:.2f}s", flush=True)
            for label, f in files.items():
                t, kept = _run(work, f"{path}-{i}-{label[:4]}", f"{path} ({label})",
                               args(["--filter", str(f)]))
                runs.setdefault(label, []).append((t, kept))
                rel = (t.seconds / kept) / (base.seconds / keys) if kept else t.seconds / base.seconds
                per = f"{t.seconds / kept * 1e6:6.2f} us/kept key  relative {rel:4.2f}" if kept else \
                    f"{t.seconds / keys * 1e6:6.2f} us/key left out  of all keys {rel:4.2f}"
                print(f"  {path:<10} {label:<24} {t.seconds:7.2f}s  {kept} keys  {per}  "
                      f"cpu cachemigrate={t.cpu['cachemigrate']:.2f}s target={t.cpu['target']:.2f}s",
                      flush=True)
        if repeat > 1:
            _summary(path, runs, keys)


def _summary(path: str, runs: dict[str, list[tuple[Timing, int]]], keys: int) -> None:
    """Medians over the repeats: seconds, CPU, and the relative figure of the medians."""
    def med(label: str, what: Callable[[Timing], float]) -> float:
        return statistics.median(what(t) for t, _ in runs[label])

    base = med("all keys", lambda t: t.seconds)
    print(f"  -- {path}, medians of {len(runs['all keys'])} runs --", flush=True)
    for label, items in runs.items():
        kept = items[0][1]
        secs = med(label, lambda t: t.seconds)
        rel = (secs / kept) / (base / keys) if kept else secs / base
        what = "relative per kept key" if kept else "of the all-keys time"
        print(f"  {path:<10} {label:<24} {secs:7.2f}s  {what} {rel:4.2f}  cpu cachemigrate="
              f"{med(label, lambda t: t.cpu['cachemigrate']):.2f}s "
              f"target={med(label, lambda t: t.cpu['target']):.2f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-online", action="store_true")
    a = ap.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        work = Path(tmp)
        src = source_server(work, dataset(a.scale, False, 0))
        try:
            rdb = work / "dump.rdb"
            shutil.copy(src.save(), rdb)
            keys = int(src.client().dbsize())
            bench_filtered(work, src, rdb, keys, repeat=a.repeat, online=not a.skip_online)
        finally:
            src.stop()


if __name__ == "__main__":
    main()
