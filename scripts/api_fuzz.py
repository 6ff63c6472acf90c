"""`make fuzz-api`: schemathesis against `cachemigrate serve`, every request signed as the SDK signs.

Starts a redis-server (behind a password) and `cachemigrate serve` with a temporary data dir
(SQLite, a file:// bucket holding an RDB file), creates an AK/SK with `cachemigrate credentials
create`, and runs every operation of /openapi.json with a bounded number of examples each:
schema-valid cases (schemathesis' positive mode) and schema-invalid ones (negative mode). Half the
cases of each operation get the real things a tenant would send put in (the project, a task, an
instance, a job, a backup, the redis-server's address and password, the bucket and its file), so
the fuzzing reaches past the first 400 into the engine.

Prints the requests sent, the responses by status class, the 5xx (there must be none), the error
bodies that are not DCS-shaped, and the schema-valid requests answered 4xx grouped by DCS error
code. Exits 1 when a 5xx or a malformed error answer was seen.

    python scripts/api_fuzz.py [--examples N] [--mode positive|negative|both] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import hypothesis  # noqa: E402
import requests  # noqa: E402
import schemathesis  # noqa: E402
from demo_service import PROJECT, Service  # noqa: E402
from hypothesis import HealthCheck, Phase  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from support.servers import RedisServer, start_redis  # noqa: E402

CLI = str(ROOT / ".venv" / "bin" / "cachemigrate")
REDIS_PASSWORD = "fuzz-pw"
# Never a request that names the machine's own redis-server (the tests' rule: port 6379 is not ours).
FORBIDDEN = "6379"


@dataclass
class Tally:
    requests: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # an error answer without a DCS body / request id
    rejected_valid: Counter[str] = field(default_factory=Counter)  # positive-mode 4xx by DCS code
    rejected_where: dict[str, Counter[str]] = field(default_factory=dict)  # code -> operations
    accepted_invalid: Counter[str] = field(default_factory=Counter)  # negative-mode 2xx by operation
    accepted_example: dict[str, str] = field(default_factory=dict)
    not_sent: int = 0
    no_cases: list[str] = field(default_factory=list)  # operation + mode with nothing to generate
    seconds: float = 0.0

    def report(self) -> str:
        classes = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_class.items()))
        lines = [
            f"requests sent: {self.requests} in {self.seconds:.1f} s ({self.not_sent} cases not sent: "
            f"they named port {FORBIDDEN})",
            f"responses by status class: {classes}",
            f"5xx: {len(self.server_errors)}",
            *(f"  {line}" for line in self.server_errors[:20]),
            f"error answers not DCS-shaped or without X-Request-Id: {len(self.malformed)}",
            *(f"  {line}" for line in self.malformed[:20]),
            f"schema-valid requests rejected with 4xx: {sum(self.rejected_valid.values())}, by DCS code:",
        ]
        for code, n in self.rejected_valid.most_common():
            where = ", ".join(f"{op} {k}" for op, k in self.rejected_where[code].most_common(3))
            lines.append(f"  {code}: {n}  (most: {where})")
        lines.append(f"operations with no case of a mode: {', '.join(self.no_cases) or '-'}")
        lines.append(f"schema-invalid requests answered 2xx: {sum(self.accepted_invalid.values())}")
        for op, n in self.accepted_invalid.most_common(10):
            lines.append(f"  {op}: {n}  (e.g. {self.accepted_example[op]})")
        return "\n".join(lines)


@dataclass
class Real:
    """The things that exist in the service, put into a case in place of generated values."""

    service: Service
    redis: RedisServer
    ids: dict[str, str] = field(default_factory=dict)

    def refresh(self) -> None:
        """Fresh ones before each operation: the one before may have deleted or stopped them."""
        addrs = f"127.0.0.1:{self.redis.port}"
        inst = self.service.signed(
            "POST",
            f"/v2/{PROJECT}/instances",
            {"name": "fuzz-real", "addrs": addrs, "password": REDIS_PASSWORD},
        )
        job = self.service.signed(
            "POST",
            f"/v2/{PROJECT}/migration/instance",
            {"name": "fuzz-real", "vpc_id": "v", "subnet_id": "s", "security_group_id": "g"},
        )
        self.ids = {
            "instance_id": inst["instance_id"],
            "task_id": job["instance_id"],
            "job_id": job["job_id"],
        }
        backup = self.service.signed("POST", f"/v2/{PROJECT}/instances/{inst['instance_id']}/backups", {})
        self.ids["backup_id"] = backup["backup_id"]

    def put_in(self, case: Any) -> None:
        for name in case.path_parameters or {}:
            if name in self.ids:
                case.path_parameters[name] = self.ids[name]
        if isinstance(case.body, dict):
            case.body = self._body(case.body)

    def _body(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._body(v, k) for k, v in value.items()}
        replacement = {
            "id": self.ids["instance_id"],
            "backup_id": self.ids["backup_id"],
            "addrs": f"127.0.0.1:{self.redis.port}",
            "password": REDIS_PASSWORD,
            "bucket_name": "local",
            "file_name": "dump.rdb",
            "migration_tasks": [self.ids["task_id"]],
            "task_id_list": [self.ids["task_id"]],
        }
        if key in replacement and type(replacement[key]) is type(value):
            return replacement[key]
        if isinstance(value, list):
            return [self._body(v, key) for v in value]
        return value


def _send(service: Service, session: requests.Session, case: Any) -> requests.Response:
    """The case as a request signed like the SDK's (SDK-HMAC-SHA256 over the bytes sent)."""
    kwargs = case.as_transport_kwargs(base_url=service.url)
    kwargs.pop("timeout", None)
    prepared = requests.Request(**kwargs).prepare()
    body = prepared.body or b""
    body = body.encode() if isinstance(body, str) else body
    parts = urlsplit(prepared.url)
    extra = {"content-type": prepared.headers["content-type"]} if "content-type" in prepared.headers else {}
    for name, value in service.signed_headers(
        case.method.upper(), parts.path, parts.query, body, extra
    ).items():
        prepared.headers[name] = value
    prepared.headers.pop("x-auth-token", None)
    return session.send(prepared, timeout=30)


def _dcs_shaped(response: requests.Response) -> bool:
    try:
        payload = response.json()
    except ValueError:
        return False
    return isinstance(payload, dict) and {"error_code", "error_msg", "error_ext_msg"} <= set(payload)


def fuzz(
    service: Service, real: Real, *, examples: int, modes: list[GenerationMode], seed: int | None
) -> Tally:
    tally = Tally()
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    session = requests.Session()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode in modes:
            real.refresh()
            check = _check(service, real, session, tally, label, mode)
            settings = hypothesis.settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=seed is None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            test = settings(
                hypothesis.given(case=operation.as_strategy(generation_mode=mode), real_things=st.booleans())(
                    check
                )
            )
            if seed is not None:
                test = hypothesis.seed(seed)(test)
            try:
                test()
            except hypothesis.errors.Unsatisfiable:  # nothing of this mode to generate (no input)
                tally.no_cases.append(f"{label} [{mode.value}]")
    session.close()
    tally.seconds = time.monotonic() - started
    return tally


def _check(
    service: Service, real: Real, session: requests.Session, tally: Tally, label: str, mode: GenerationMode
) -> Callable[..., None]:
    def check(case: Any, real_things: bool) -> None:
        if "project_id" in (case.path_parameters or {}):
            case.path_parameters["project_id"] = PROJECT
        if real_things:
            real.put_in(case)
        if FORBIDDEN in json.dumps([case.path_parameters, case.query, case.body], default=str):
            tally.not_sent += 1
            return
        try:
            response = _send(service, session, case)
        except requests.RequestException as exc:  # the service hung up or died: as bad as a 5xx
            tally.server_errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return
        tally.requests += 1
        status = response.status_code
        tally.by_class[f"{status // 100}xx"] += 1
        where = f"{case.method.upper()} {case.formatted_path}"
        if status >= 500:
            tally.server_errors.append(f"{where} [{mode.value}]: {status} {response.text[:300]}")
        if status >= 400 and not (_dcs_shaped(response) and response.headers.get("x-request-id")):
            tally.malformed.append(f"{where}: {status} {response.text[:200]}")
        if 400 <= status < 500 and mode is GenerationMode.POSITIVE and _dcs_shaped(response):
            code = response.json()["error_code"]
            tally.rejected_valid[code] += 1
            tally.rejected_where.setdefault(code, Counter())[label] += 1
        if status < 300 and mode is GenerationMode.NEGATIVE:
            tally.accepted_invalid[label] += 1
            sent = {"query": case.query, "body": case.body, "path": case.path_parameters}
            tally.accepted_example.setdefault(label, json.dumps(sent, default=str)[:300])

    return check


@contextmanager
def fuzz_target(work: Path) -> Iterator[tuple[Service, Real]]:
    """A redis-server with some keys and its RDB in a bucket, and the service in front of it."""
    redis = start_redis(work / "redis", password=REDIS_PASSWORD, args=["--repl-diskless-sync-delay", "0"])
    try:
        client = redis.client()
        for i in range(50):
            client.set(f"k:{i}", i)
        bucket = work / "bucket"
        bucket.mkdir()
        shutil.copy(redis.save(), bucket / "dump.rdb")
        env = {
            "CACHEMIGRATE_BUCKETS": json.dumps({"local": f"file://{bucket}"}),
            "CACHEMIGRATE_MAX_TASKS_PER_PROJECT": "1000000",
            "CACHEMIGRATE_STOP_GRACE_SECONDS": "2",
        }
        service = Service(CLI, work, env=env)
        try:
            yield service, Real(service, redis)
        finally:
            service.stop()
    finally:
        redis.stop()


def run(examples: int, modes: list[GenerationMode], seed: int | None = None) -> Tally:
    with (
        tempfile.TemporaryDirectory(prefix="cachemigrate-fuzz-") as tmp,
        fuzz_target(Path(tmp)) as (svc, real),
    ):
        return fuzz(svc, real, examples=examples, modes=modes, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=50, help="examples per operation and mode")
    parser.add_argument("--mode", choices=["positive", "negative", "both"], default="both")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: derandomized)")
    args = parser.parse_args(argv)
    modes = [GenerationMode(args.mode)] if args.mode != "both" else list(GenerationMode)
    tally = run(args.examples, modes, args.seed)
    print(tally.report())
    return 1 if tally.server_errors or tally.malformed else 0


if __name__ == "__main__":
    sys.exit(main())
