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
import contextlib
import json
import re
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import httpx  # noqa: E402
import hypothesis  # noqa: E402
import requests  # noqa: E402
import schemathesis  # noqa: E402
from demo_service import PROJECT, Service  # noqa: E402
from hypothesis import HealthCheck, Phase  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from cachemigrate.service import states  # noqa: E402
from support.pg import pg_schema  # noqa: E402
from support.servers import RedisServer, start_redis  # noqa: E402

CLI = str(ROOT / ".venv" / "bin" / "cachemigrate")
# Fields the OpenAPI document types as free strings that the service takes a few values of: the
# real cases pick one of those (the vocabulary of service/states.py).
CHOICES = {
    "migration_type": [states.IMPORT, states.ONLINE],
    "migration_method": [states.FULL, states.INCREMENTAL],
    "resume_mode": list(states.RESUME_MODES),
    "file_source": ["self_build_obs", "backup_record"],
    "network_type": ["vpc", "vpn"],
    "task_name": ["fuzz-task", "fuzz_task-2"],
    "name": ["fuzz-name", "fuzz_name-2"],
}
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
    rejected_why: dict[str, Counter[str]] = field(default_factory=dict)  # code -> error_msg
    accepted_invalid: Counter[str] = field(default_factory=Counter)  # negative-mode 2xx by operation
    accepted_example: dict[str, str] = field(default_factory=dict)
    not_sent: int = 0
    ok_by_operation: Counter[str] = field(default_factory=Counter)  # 2xx answers per operation
    operations: list[str] = field(default_factory=list)
    no_cases: list[str] = field(default_factory=list)  # operation + mode with nothing to generate
    seconds: float = 0.0

    def record(self, label: str, where: str, mode: str, response: requests.Response) -> None:
        """What every answer is counted for, whichever phase sent it."""
        self.requests += 1
        status = response.status_code
        self.by_class[f"{status // 100}xx"] += 1
        if status < 300:
            self.ok_by_operation[label] += 1
        if status >= 500:
            self.server_errors.append(f"{where} [{mode}]: {status} {response.text[:300]}")
        if status >= 400 and not (_dcs_shaped(response) and response.headers.get("x-request-id")):
            self.malformed.append(f"{where} [{mode}]: {status} {response.text[:200]}")

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
            lines += [f"      {k} x {why}" for why, k in self.rejected_why[code].most_common(4)]
        never = [op for op in self.operations if not self.ok_by_operation[op]]
        lines.append(f"operations never answered 2xx: {', '.join(never) or '-'}")
        lines.append(f"operations with no case of a mode: {', '.join(self.no_cases) or '-'}")
        lines.append(f"schema-invalid requests answered 2xx: {sum(self.accepted_invalid.values())}")
        for op, n in self.accepted_invalid.most_common(10):
            lines.append(f"  {op}: {n}  (e.g. {self.accepted_example[op]})")
        return "\n".join(lines)


# Operations a running task refuses: their real cases get a task that is not configured yet.
IDLE_TASK_OPERATIONS = {"POST /migration/{task_id}/task", "DELETE /migration-tasks/delete"}
# The locator an endpoint of each body keeps when a real case has both: the service wants exactly
# one of id and addrs (a task's source by addrs, its target by a registered id).
LOCATOR = {"source_instance": "addrs", "target_instance": "id"}


@dataclass
class Real:
    """The things that exist in the service, put into a case in place of generated values: path
    ids, and a valid body (per operation) under the generated one, its values made real."""

    service: Service
    source: RedisServer
    target: RedisServer
    ids: dict[str, str] = field(default_factory=dict)

    def refresh(self) -> None:
        """Fresh ones before each operation: the one before may have deleted or stopped them. The
        task is an incremental migration (running until stopped) from the source to the target."""
        if "task_id" in self.ids:  # one replica of the source at a time
            self._try("POST", f"/migration-task/{self.ids['task_id']}/stop")
        inst = self.service.signed("POST", f"/v2/{PROJECT}/instances", self.template("POST /instances"))
        self.ids = {"instance_id": inst["instance_id"]}
        job = self.service.signed(
            "POST", f"/v2/{PROJECT}/migration/instance", self.template("POST /migration/instance")
        )
        self.ids |= {"task_id": job["instance_id"], "job_id": job["job_id"]}
        body = self.template("POST /migration/{task_id}/task") | {"migration_method": states.INCREMENTAL}
        self.service.signed("POST", f"/v2/{PROJECT}/migration/{job['instance_id']}/task", body)
        # And one created but not configured yet: set_online and delete take it.
        idle = self.service.signed(
            "POST", f"/v2/{PROJECT}/migration/instance", self.template("POST /migration/instance")
        )
        self.ids["idle_task_id"] = idle["instance_id"]
        backup = self.service.signed("POST", f"/v2/{PROJECT}/instances/{inst['instance_id']}/backups", {})
        self.ids["backup_id"] = backup["backup_id"]
        # A verification of the running task (the GET routes read it).
        ver = self.service.signed(
            "POST",
            f"/v2/{PROJECT}/migration-task/{job['instance_id']}/verifications",
            self.template("POST /migration-task/{task_id}/verifications"),
        )
        self.ids["verification_id"] = ver["verification_id"]

    def _try(self, method: str, path: str) -> None:
        # Already stopped, failed or deleted by the operation before: nothing to do.
        with contextlib.suppress(httpx.HTTPStatusError):
            self.service.signed(method, f"/v2/{PROJECT}{path}", {})

    def template(self, operation: str) -> dict[str, Any]:
        """A body the service accepts for ``operation`` ("METHOD /path" after the project)."""
        source = {"addrs": self._addrs(self.source), "password": REDIS_PASSWORD}
        target = {"id": self.ids.get("instance_id", "")}
        task, idle = [self.ids.get("task_id", "")], [self.ids.get("idle_task_id", "")]
        bodies: dict[str, dict[str, Any]] = {
            "POST /instances": {
                "name": "fuzz-real",
                "addrs": self._addrs(self.target),
                "password": REDIS_PASSWORD,
            },
            "POST /migration/instance": {
                "name": "fuzz-real",
                "vpc_id": "v",
                "subnet_id": "s",
                "security_group_id": "g",
            },
            "POST /migration/{task_id}/task": {
                "migration_method": states.FULL,
                "resume_mode": "auto",
                "source_instance": source,
                "target_instance": target,
            },
            "POST /migration-task": {
                "task_name": "fuzz-task",
                "migration_type": states.IMPORT,
                "migration_method": states.FULL,
                "backup_files": {
                    "file_source": "self_build_obs",
                    "bucket_name": "local",
                    "files": [{"file_name": "dump.rdb"}],
                },
                "source_instance": source,
                "target_instance": target,
            },
            "POST /migration-task/batch-stop": {"migration_tasks": task},
            "POST /migration-tasks/batch-restart": {"migration_tasks": task},
            "DELETE /migration-tasks/delete": {"task_id_list": idle},
            "PUT /migration-task/{task_id}": {"resume_mode": "auto"},
            "POST /migration-task/{task_id}/verifications": {"mode": "sampled", "sample": 10, "rounds": 0},
        }
        return bodies.get(operation, {})

    @staticmethod
    def _addrs(server: RedisServer) -> str:
        return f"127.0.0.1:{server.port}"

    def put_in(self, case: Any, operation: str) -> None:
        idle = operation in IDLE_TASK_OPERATIONS
        for name in case.path_parameters or {}:
            if name in self.ids:
                case.path_parameters[name] = self.ids["idle_task_id" if idle else name]
        template = self.template(operation)
        if isinstance(case.body, dict) or (template and case.body is None):
            case.body = self._merge(template, self._real(case.body or {}))

    def _merge(self, base: dict[str, Any], top: dict[str, Any], key: str = "") -> dict[str, Any]:
        out = dict(base)
        for k, v in top.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                out[k] = self._merge(base[k], v, k)
            elif v is not None or k not in base:
                out[k] = v
        if key in LOCATOR and "id" in out and "addrs" in out:
            out.pop("addrs" if LOCATOR[key] == "id" else "id")
        return out

    def _real(self, value: Any, key: str = "", parent: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._real(v, k, key) for k, v in value.items()}
        if key in CHOICES and isinstance(value, str):
            # A valid value, but which one the generated value decides (cases differ).
            options = CHOICES[key]
            return options[zlib.crc32(value.encode("utf-8", "surrogatepass")) % len(options)]
        replacement = {
            "id": self.ids["instance_id"],
            "backup_id": self.ids["backup_id"],
            "addrs": self._addrs(self.source if parent == "source_instance" else self.target),
            "password": REDIS_PASSWORD,
            "bucket_name": "local",
            "file_name": "dump.rdb",
            "migration_tasks": [self.ids["task_id"]],
            "task_id_list": [self.ids["idle_task_id"]],
        }
        if key in replacement and type(replacement[key]) is type(value):
            return replacement[key]
        if isinstance(value, list):
            return [self._real(v, key, parent) for v in value]
        return value


def _send(service: Service, session: requests.Session, case: Any) -> requests.Response:
    """The case as a request signed like the SDK's (SDK-HMAC-SHA256 over the bytes sent)."""
    kwargs = case.as_transport_kwargs(base_url=service.url)
    kwargs.pop("timeout", None)
    return _signed_send(service, session, requests.Request(**kwargs).prepare())


def _signed_send(service: Service, session: requests.Session, prepared: Any) -> requests.Response:
    body = prepared.body or b""
    body = body.encode() if isinstance(body, str) else body
    parts = urlsplit(prepared.url)
    extra = {"content-type": prepared.headers["content-type"]} if "content-type" in prepared.headers else {}
    method = str(prepared.method).upper()
    for name, value in service.signed_headers(method, parts.path, parts.query, body, extra).items():
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
    service: Service,
    real: Real,
    *,
    examples: int,
    modes: list[GenerationMode],
    seed: int | None,
    only: str = "",
    with_hostile: bool = True,
) -> Tally:
    tally = Tally()
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    session = requests.Session()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if only and only not in label:
            continue
        tally.operations.append(label)
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
    if with_hostile:
        hostile(service, real, session, tally, only)
    session.close()
    tally.seconds = time.monotonic() - started
    return tally


# Text every string of a request may be made of, whatever the schema says: NUL (PostgreSQL keeps
# none), a lone surrogate (JSON carries one, UTF-8 cannot), a long run, a path out of a bucket.
HOSTILE = {
    "NUL": "a\x00b",
    "lone surrogate": "a\ud800b",
    "long": "x" * 5000,
    "traversal": "../../../../etc/passwd",
}


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where the strings of a JSON value are (key and index paths)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, str):
            yield (*at, key)
        else:
            yield from _leaves(item, (*at, key))


def _with(value: Any, at: tuple[Any, ...], text: str) -> Any:
    if not at:
        return text
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[at[0]] = _with(value[at[0]], at[1:], text)
    return copy


def hostile(service: Service, real: Real, session: requests.Session, tally: Tally, only: str = "") -> None:
    """Each string of a real request (path and query parameters, body values) replaced, one at a
    time, by each HOSTILE text: the answers must be DCS 4xx (or 2xx), never a 5xx."""
    doc = session.get(f"{service.url}/openapi.json", timeout=30).json()
    for path, item in doc["paths"].items():
        for method, spec in item.items():
            label = f"{method.upper()} {path}"
            if only and only not in label:
                continue
            real.refresh()
            op = f"{method.upper()} {path.removeprefix('/v2/{project_id}')}"
            ids = dict(real.ids, task_id=real.ids["idle_task_id"]) if op in IDLE_TASK_OPERATIONS else real.ids
            values = {"project_id": PROJECT, **ids}
            params = spec.get("parameters", [])
            body = real.template(op) if "requestBody" in spec else None
            variants: list[tuple[dict[str, str], dict[str, str], Any]] = []
            for p in params:
                for text in HOSTILE.values():
                    if p["in"] == "path" and p["name"] != "project_id":
                        variants.append(({**values, p["name"]: text}, {}, body))
                    elif p["in"] == "query":
                        variants.append((values, {p["name"]: text}, body))
            for at in _leaves(body or {}):
                variants += [(values, {}, _with(body, at, text)) for text in HOSTILE.values()]
            for path_values, query, sent in variants:
                quoted = {k: quote(v, safe="", errors="surrogatepass") for k, v in path_values.items()}
                url = service.url + path.format_map(quoted)
                url += ("?" + urlencode(query, quote_via=_quote_any)) if query else ""
                data = None if sent is None else json.dumps(sent).encode()
                headers = {"content-type": "application/json"} if data is not None else {}
                request = requests.Request(method.upper(), url, data=data, headers=headers)
                try:
                    response = _signed_send(service, session, request.prepare())
                except requests.RequestException as exc:
                    tally.server_errors.append(f"{label} [hostile]: {type(exc).__name__}: {exc}")
                    continue
                tally.record(label, f"{label} {query or ''}", "hostile", response)


def _quote_any(text: str, safe: str = "", encoding: str | None = None, errors: str | None = None) -> str:
    return quote(text, safe=safe, errors="surrogatepass")


def _check(
    service: Service, real: Real, session: requests.Session, tally: Tally, label: str, mode: GenerationMode
) -> Callable[..., None]:
    def check(case: Any, real_things: bool) -> None:
        if "project_id" in (case.path_parameters or {}):
            case.path_parameters["project_id"] = PROJECT
        if real_things:
            real.put_in(case, f"{case.method.upper()} {case.path.removeprefix('/v2/{project_id}')}")
        if FORBIDDEN in json.dumps([case.path_parameters, case.query, case.body], default=str):
            tally.not_sent += 1
            return
        try:
            response = _send(service, session, case)
        except requests.RequestException as exc:  # the service hung up or died: as bad as a 5xx
            tally.server_errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return
        tally.record(label, f"{case.method.upper()} {case.formatted_path}", mode.value, response)
        status = response.status_code
        if 400 <= status < 500 and mode is GenerationMode.POSITIVE and _dcs_shaped(response):
            code = response.json()["error_code"]
            tally.rejected_valid[code] += 1
            tally.rejected_where.setdefault(code, Counter())[label] += 1
            why = re.sub(r"[0-9a-f-]{36}", "<id>", str(response.json()["error_msg"]))[:90]
            tally.rejected_why.setdefault(code, Counter())[why] += 1
        if status < 300 and mode is GenerationMode.NEGATIVE and not real_things:  # (real ones may be fixed)
            tally.accepted_invalid[label] += 1
            sent = {"query": case.query, "body": case.body, "path": case.path_parameters}
            tally.accepted_example.setdefault(label, json.dumps(sent, default=str)[:300])

    return check


@contextlib.contextmanager
def fuzz_target(work: Path, database_url: str = "") -> Iterator[tuple[Service, Real]]:
    """Two redis-servers behind a password (the source with some keys, its RDB in a bucket), and
    the service in front of them (SQLite in the data dir, or ``database_url``)."""
    fast = ["--repl-diskless-sync-delay", "0"]
    source = start_redis(work / "source", password=REDIS_PASSWORD, args=fast)
    target = start_redis(work / "target", password=REDIS_PASSWORD, args=fast)
    try:
        client = source.client()
        for i in range(50):
            client.set(f"k:{i}", i)
        bucket = work / "bucket"
        bucket.mkdir()
        shutil.copy(source.save(), bucket / "dump.rdb")
        env = {
            "CACHEMIGRATE_BUCKETS": json.dumps({"local": f"file://{bucket}"}),
            "CACHEMIGRATE_MAX_TASKS_PER_PROJECT": "1000000",
            "CACHEMIGRATE_STOP_GRACE_SECONDS": "2",
            "CACHEMIGRATE_DATABASE_URL": database_url,
        }
        service = Service(CLI, work, env=env)
        try:
            yield service, Real(service, source, target)
        finally:
            service.stop()
    finally:
        source.stop()
        target.stop()


def run(
    examples: int,
    modes: list[GenerationMode],
    seed: int | None = None,
    only: str = "",
    postgres: bool = False,
    with_hostile: bool = True,
) -> Tally:
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cachemigrate-fuzz-")))
        url = stack.enter_context(pg_schema("fuzz"))[1] if postgres else ""
        svc, real = stack.enter_context(fuzz_target(work, url))
        return fuzz(
            svc, real, examples=examples, modes=modes, seed=seed, only=only, with_hostile=with_hostile
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=50, help="examples per operation and mode")
    parser.add_argument("--mode", choices=["positive", "negative", "both"], default="both")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: derandomized)")
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL (tests/support/pg.py), not SQLite"
    )
    parser.add_argument("--no-hostile", action="store_true", help="skip the HOSTILE text phase")
    parser.add_argument("--only", default="", help="only operations whose 'METHOD /path' holds this")
    args = parser.parse_args(argv)
    modes = [GenerationMode(args.mode)] if args.mode != "both" else list(GenerationMode)
    tally = run(args.examples, modes, args.seed, args.only, args.postgres, not args.no_hostile)
    print(tally.report())
    return 1 if tally.server_errors or tally.malformed else 0


if __name__ == "__main__":
    sys.exit(main())
