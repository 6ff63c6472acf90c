"""`make fuzz`: coverage-guided fuzzing of the RDB parser (atheris) and the C walker under ASan/UBSan.

    python scripts/fuzz_rdb.py [--seconds 60] [--jobs 1]   # fuzz for that long, then report
    python scripts/fuzz_rdb.py FILE...                      # run inputs once (reproduce a crash)

The oracle is tests/unit/test_rdb_fuzz.check (the Python parser and the parser with the C walker
agree; parsing and decoding end in a value or a CacheMigrateError, nothing else). atheris
instruments the Python code of cachemigrate: its coverage guides the mutations (gcc cannot give
libFuzzer the C walker's own edge coverage; the walker is reached through the parser's paths).
The C walker is compiled again for the run, twice, into build/fuzz/:

1. with UBSan linked in statically (its symbols hidden, so libFuzzer's coverage hooks stay
   atheris'), loaded in place of the installed walker while fuzzing: undefined behaviour
   (overflow, misaligned or out-of-range shifts...) aborts the run as a crash;
2. with ASan and UBSan, for a second pass with the ASan runtime preloaded (which would take the
   coverage hooks over, hence no fuzzing in it): every input of the corpus the fuzzer built, the
   seeds and the crashes are run again, so that an out-of-bounds read or a use after free in
   the walker on any of them fails the run.

Seeds: the shared corpus' RDB files up to 16 KiB (../shared/corpus or CACHEMIGRATE_CORPUS) and the
inputs found before (tests/data/rdb-fuzz/). The working corpus build/fuzz/corpus is kept between
runs. A crash is written to build/fuzz/crashes/; copy it to tests/data/rdb-fuzz/ (a regression
test then runs it) once fixed. The report: executions, new corpus entries, crashes; exit 1 on a crash.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "fuzz"
WALK_C = ROOT / "src" / "cachemigrate" / "formats" / "rdb" / "_walk.c"
FOUND = ROOT / "tests" / "data" / "rdb-fuzz"
MAX_LEN = 16384
UBSAN_FLAGS = ["-fsanitize=undefined", "-fno-sanitize-recover=undefined", "-static-libubsan",
               "-Wl,--exclude-libs,ALL"]
ASAN_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]


def build_walker(kind: str) -> Path:
    """The C walker built for ``kind`` ("ubsan" or "asan"), as build/fuzz/<kind>/_walk<EXT_SUFFIX>."""
    out = WORK / kind / ("_walk" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    if out.exists() and out.stat().st_mtime >= WALK_C.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    include = sysconfig.get_paths()["include"]
    cc = os.environ.get("CC", "gcc")
    flags = UBSAN_FLAGS if kind == "ubsan" else ASAN_FLAGS
    subprocess.run([cc, "-O1", "-g", "-fPIC", "-shared", *flags, "-Wall", f"-I{include}",
                    str(WALK_C), "-o", str(out)], check=True)
    return out


def seeds() -> Path:
    """build/fuzz/seeds: the corpus' small RDB files and the inputs found before."""
    sys.path[:0] = [str(ROOT / "tests")]
    from support.corpus import rdb_files

    dest = WORK / "seeds"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    n = 0
    for f in rdb_files():
        if f.full.stat().st_size <= MAX_LEN:
            shutil.copy(f.full, dest / f.path.replace("/", "__"))
            n += 1
    for p in FOUND.glob("*"):
        if p.is_file() and p.name != "README.md":
            shutil.copy(p, dest / f"found__{p.name}")
            n += 1
    if n == 0:
        raise SystemExit("fuzz: no seeds: the shared corpus is missing "
                         "(../shared/corpus or CACHEMIGRATE_CORPUS)")
    return dest


def runtime(name: str) -> str:
    path = subprocess.run([os.environ.get("CC", "gcc"), f"-print-file-name={name}"], check=True,
                          capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path):
        raise SystemExit(f"fuzz: {name} not found (gcc's sanitizer runtime: apt-get install gcc)")
    return path


def parent(args: argparse.Namespace) -> int:
    ubsan, asan = build_walker("ubsan"), build_walker("asan")
    seed_dir = seeds()
    corpus, crashes = WORK / "corpus", WORK / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    env = {**os.environ, "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
           "CACHEMIGRATE_FUZZ_WALKER": str(ubsan)}
    cmd = [sys.executable, __file__, "--child", f"-max_total_time={args.seconds}", f"-max_len={MAX_LEN}",
           f"-artifact_prefix={crashes}/", "-print_final_stats=1", "-timeout=10", "-rss_limit_mb=4096"]
    if args.jobs > 1:
        cmd += [f"-jobs={args.jobs}", f"-workers={args.jobs}"]
    cmd += [str(corpus), str(seed_dir)]
    proc = subprocess.run(cmd, env=env, cwd=WORK, capture_output=True, text=True, check=False)
    log = proc.stdout + proc.stderr
    (WORK / "last-run.log").write_text(log)
    execs = sum(int(m) for m in re.findall(r"stat::number_of_executed_units:\s*(\d+)", log))
    added = sum(int(m) for m in re.findall(r"stat::new_units_added:\s*(\d+)", log))
    found = sorted(set(crashes.iterdir()) - before)
    print(f"fuzz: {execs} executions in {args.seconds} s (UBSan walker), {added} new corpus inputs, "
          f"corpus {len(list(corpus.iterdir()))} inputs, {len(found)} crashes "
          f"(log: {WORK / 'last-run.log'})")
    for f in found:
        print(f"fuzz: crash input {f}")
    if proc.returncode != 0 and not found:
        print(log[-3000:])
    # The second pass: everything again under ASan (+UBSan).
    env = {**os.environ, "LD_PRELOAD": runtime("libasan.so"),
           "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1", "CACHEMIGRATE_FUZZ_WALKER": str(asan)}
    inputs = [p for d in (corpus, seed_dir, crashes) for p in sorted(d.iterdir()) if p.is_file()]
    listing = WORK / "asan-inputs.txt"
    listing.write_text("".join(f"{p}\n" for p in inputs))
    rep = subprocess.run([sys.executable, __file__, "--replay", str(listing)], env=env, cwd=WORK,
                         capture_output=True, text=True, check=False)
    (WORK / "asan-run.log").write_text(rep.stdout + rep.stderr)
    print(f"fuzz: ASan+UBSan walker: {len(inputs)} inputs run again, "
          f"{'no error' if rep.returncode == 0 else 'FAILED'} (log: {WORK / 'asan-run.log'})")
    if rep.returncode != 0:
        print((rep.stdout + rep.stderr)[-3000:])
    return 1 if found or proc.returncode != 0 or rep.returncode != 0 else 0


def load_walker() -> None:
    """Put the sanitized walker where ``cachemigrate.formats.rdb.walk`` imports it from."""
    path = os.environ.get("CACHEMIGRATE_FUZZ_WALKER")
    if not path:
        return
    name = "cachemigrate.formats.rdb._walk"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module


def child(argv: list[str]) -> None:
    import atheris

    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "unit")]
    load_walker()
    with atheris.instrument_imports(include=["cachemigrate"]):
        from test_rdb_fuzz import check

        from cachemigrate.formats.rdb import walk as c_walk
    if os.environ.get("CACHEMIGRATE_FUZZ_WALKER"):
        walker_file = sys.modules["cachemigrate.formats.rdb._walk"].__file__
        assert c_walk.walk is not None and walker_file == os.environ["CACHEMIGRATE_FUZZ_WALKER"], walker_file
    atheris.Setup([sys.argv[0], *argv], check)
    atheris.Fuzz()


def replay(files: list[str]) -> int:
    """Each input once through the oracle (the walker of CACHEMIGRATE_FUZZ_WALKER when set)."""
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "unit")]
    load_walker()
    from test_rdb_fuzz import check

    for name in files:
        try:
            check(Path(name).read_bytes())
        except BaseException:
            print(f"fuzz: {name}: FAILED", flush=True)
            raise
    print(f"fuzz: {len(files)} inputs: ok")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return 0
    if len(sys.argv) > 2 and sys.argv[1] == "--replay":  # a file listing the inputs, one a line
        return replay(Path(sys.argv[2]).read_text().splitlines())
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("files", nargs="*", help="inputs to run once through the oracle")
    args = ap.parse_args()
    return replay(args.files) if args.files else parent(args)


if __name__ == "__main__":
    sys.exit(main())
