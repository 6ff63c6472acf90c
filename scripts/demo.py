"""`make demo`: the main jobs end to end on this machine.

1. Backup-file import: starts two local redis-servers on free ports, loads the reference dataset
   into the first, saves its RDB, imports that file into the second with the `cachemigrate` CLI
   and compares every key.
2. The service: starts `cachemigrate serve` on SQLite, registers a third redis-server as target
   instance, runs an incremental online migration of the first server through the official DCS
   SDK while a writer keeps changing it, shows stats, stops the task and compares every key.
3. The end of a migration through the SDK: haproxy fronts for the first two servers, both
   registered with their fronts; an incremental migration under writes, a verification, then
   exchange-ip, rollback-ip and exchange-ip again while a client writes through the front; the
   write pause and the lost writes of each switch, every key compared, the task deleted.

Prints a summary; exits non-zero if anything differs. With ``--console`` (``make demo CONSOLE=1``)
it then runs the online migration again and prints the web console's address and a sign-in
token, and keeps it all up until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import demo_cutover  # noqa: E402
import demo_service  # noqa: E402

from cachemigrate.engine.compare import compare  # noqa: E402
from cachemigrate.protocol.endpoint import Endpoint  # noqa: E402
from support.servers import start_redis  # noqa: E402

GEN = ROOT.parent / "shared" / "bench" / "gen_dataset.py"
SCALE = int(os.environ.get("DEMO_SCALE", "200000"))


def step(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def main(argv: list[str]) -> int:
    console = "--console" in argv
    held: list[tuple[demo_service.Service, str]] | None = [] if console else None
    with tempfile.TemporaryDirectory(prefix="cachemigrate-demo-") as tmp:
        work = Path(tmp)
        step(f"generating the reference dataset ({SCALE:,} keys)")
        resp = work / "load.resp"
        subprocess.run([sys.executable, str(GEN), "--scale", str(SCALE), "-o", str(resp)], check=True,
                       stdout=subprocess.DEVNULL)
        source = start_redis(work / "source")
        target = start_redis(work / "target")
        try:
            step(f"loading it into the source redis-server on port {source.port}")
            with resp.open("rb") as fh:
                subprocess.run(["redis-cli", "-p", str(source.port), "--pipe"], stdin=fh, check=True,
                               stdout=subprocess.DEVNULL)
            rdb = source.save()
            print(f"source: {source.client().dbsize():,} keys; RDB {rdb.stat().st_size / 1e6:.1f} MB")
            step("cachemigrate inspect")
            cli = str(ROOT / ".venv" / "bin" / "cachemigrate")
            subprocess.run([cli, "inspect", str(rdb), "--top", "5"], check=True)
            step(f"cachemigrate import into the target redis-server on port {target.port}")
            t0 = time.perf_counter()
            subprocess.run([cli, "import", str(rdb), "--target", target.url], check=True)
            seconds = time.perf_counter() - t0
            step("comparing every key (type, value, TTL within 1 s)")
            report = asyncio.run(compare(Endpoint.from_url(source.url), Endpoint.from_url(target.url)))
            print(f"keys compared: {report.keys_compared:,}; mismatched {report.mismatched}, "
                  f"missing {report.missing}, extra {report.extra} ({report.seconds:.1f} s)")
            for m in report.examples[:10]:
                print(f"  db {m.db} {m.key!r}: {m.reason}")
            imported_ok = report.ok
            imported = (f"file import: {report.keys_compared:,} keys in {seconds:.2f} s "
                        f"({report.keys_compared / seconds:,.0f} keys/s, CLI start-up included): "
                        f"{'IDENTICAL' if report.ok else 'DIFFERENT'}")
            online_target = start_redis(work / "online-target")
            try:
                online_ok = demo_service.run(cli, work, source, online_target, step, held)
                cutover_ok = demo_cutover.run(cli, work, source, target, step)
                step("summary")
                print(imported)
                print(f"online incremental migration through the DCS API: "
                      f"{'IDENTICAL' if online_ok else 'DIFFERENT'} after stop")
                print(f"exchange-ip, rollback-ip, exchange-ip through the SDK and haproxy fronts: "
                      f"{'nothing lost or doubled, IDENTICAL' if cutover_ok else 'FAILED'}")
                if held:
                    demo_service.show_console(held.pop(), source, step)
                return 0 if imported_ok and online_ok and cutover_ok else 1
            finally:
                for svc, _task in held or []:
                    svc.stop()
                online_target.stop()
        finally:
            source.stop()
            target.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
