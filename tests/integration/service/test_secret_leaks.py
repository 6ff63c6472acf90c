"""No secret leaves the service (spec §9.8, issue 10): a `cachemigrate serve` process with every
logger at DEBUG, real redis-servers behind passwords, and every kind of work the API does with a
password: instances registered (and one refused), online full and incremental migrations, RDB
imports from a bucket and from a backup, a backup, tasks that fail on a wrong password; then the
raw bytes of every file in the data dir (the SQLite database, its -wal/-journal, backups), the
process's output, every API response (task logs included) and the admin commands' output are
searched for each secret: the Redis passwords, the SK, the X-Auth-Token, the Fernet key, plain
and in the encodings a careless line would use (base64 at any alignment, hex, URL, JSON escapes).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import shutil
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from cryptography.fernet import Fernet

from conftest import CLI_DEBUG_LOGGING, Creds, cli_env, fields, free_port, run_cli, serve_cli, signed
from support.poll import wait_until
from support.servers import RedisServer

PROJECT = "0123456789abcdef0123456789abcdef"
FAST = ["--repl-diskless-sync-delay", "0"]
TERMINAL = ("SUCCESS", "FAILED", "TERMINATED")


def _b64_cores(raw: bytes, encode: Callable[[bytes], bytes]) -> dict[str, bytes]:
    """The part of ``encode(prefix + raw + suffix)`` that only ``raw`` decides, for the three
    alignments of ``raw`` in a longer base64 text."""
    cores = {}
    for shift in range(3):
        text = encode(b"\0" * shift + raw)
        start = 4 * -(-shift // 3)  # the first group made of ``raw`` bytes only
        end = 4 * ((shift + len(raw)) // 3)  # the last full group
        cores[f"base64@{shift}"] = text[start:end]
    return cores


def encoded_forms(raw: bytes) -> dict[str, bytes]:
    """``raw`` and the ways a log line, a stored column or a body could spell it."""
    text = raw.decode("utf-8", "surrogateescape")
    forms = {
        "plain": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "url": quote(raw, safe="").encode(),
        "url+": quote_plus(raw).encode(),
        "json": json.dumps(text)[1:-1].encode(),
        "json-utf8": json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogateescape"),
    }
    forms.update(_b64_cores(raw, base64.b64encode))
    forms.update({f"url{k}": v for k, v in _b64_cores(raw, base64.urlsafe_b64encode).items()})
    unique: dict[bytes, str] = {}
    for name, form in forms.items():
        unique.setdefault(form, name)
    return {name: form for form, name in unique.items() if len(form) >= 8}


@dataclass
class Haystacks:
    """Every byte the service let out, by where it was seen."""

    places: dict[str, bytes] = field(default_factory=dict)

    def add(self, where: str, data: bytes) -> None:
        self.places[where] = self.places.get(where, b"") + data

    def response(self, label: str, r: httpx.Response) -> httpx.Response:
        head = "\n".join(f"{k}: {v}" for k, v in r.headers.items()).encode()
        self.add(f"response {len(self.places)} {label} ({r.status_code})", head + b"\n\n" + r.content)
        return r

    def files(self, label: str, root: Path) -> list[Path]:
        paths = sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            self.add(f"{label} {p.relative_to(root)}", p.read_bytes())
        return paths

    def leaks(self, secret_values: dict[str, bytes], skip: dict[str, set[str]]) -> list[str]:
        found = []
        for name, raw in secret_values.items():
            for form, needle in encoded_forms(raw).items():
                for where, data in self.places.items():
                    if where not in skip.get(name, set()) and needle in data:
                        at = data.index(needle)
                        context = data[max(0, at - 80) : at + len(needle) + 40]
                        found.append(f"{name} ({form}) in {where}: ...{context!r}...")
        return found


def test_encoded_forms_find_a_secret_inside_longer_encodings() -> None:
    """The search itself: a secret base64'd at any offset inside a longer text is still found."""
    secret = f'Pw/"{secrets.token_urlsafe(15)}+%ü'.encode()
    forms = encoded_forms(secret)
    for prefix in (b"", b"a", b"ab", b"abc", b"user:"):
        for wrap in (base64.b64encode, base64.urlsafe_b64encode):
            blob = wrap(prefix + secret + b"tail")
            assert any(form in blob for form in forms.values()), (prefix, wrap)
    assert forms["hex"] in binascii.hexlify(b"x" + secret)
    assert forms["url"] in quote(b"k=" + secret, safe="").encode()
    assert forms["json"] in json.dumps({"p": secret.decode()}).encode()
    assert forms["json-utf8"] in json.dumps({"p": secret.decode()}, ensure_ascii=False).encode()


def _password_server(redis_factory: Any, name: str, password: str) -> RedisServer:
    """A redis-server that asks for ``password`` (set after the start: requirepass given on the
    command line is split at quotes and spaces)."""
    server: RedisServer = redis_factory(name, args=FAST)
    server.client().config_set("requirepass", password)
    server.password = password
    return server


def test_no_secret_in_files_logs_or_responses(tmp_path: Path, redis_factory: Any) -> None:
    # Passwords with characters every encoding changes: quotes, slash, plus, percent, non-ASCII.
    src_pw = f'src"{secrets.token_urlsafe(12)}/+%=ü'
    tgt_pw = f"tgt {secrets.token_urlsafe(12)}&@:"
    wrong_pw = f"wrong-{secrets.token_urlsafe(12)}"
    fernet_key = Fernet.generate_key().decode()
    source = _password_server(redis_factory, "src", src_pw)
    target = _password_server(redis_factory, "tgt", tgt_pw)
    for i in range(200):
        source.client().set(f"k:{i}", f"v{i}")
    source.client(db=3).hset("h", mapping={"a": "1"})

    data_dir, bucket = tmp_path / "data", tmp_path / "bucket"
    bucket.mkdir()
    env = cli_env(data_dir, secret=fernet_key)
    env |= {
        "CACHEMIGRATE_BUCKETS": json.dumps({"local": {"url": f"file://{bucket}", "projects": [PROJECT]}}),
        "CACHEMIGRATE_STATUS_INTERVAL_SECONDS": "0.2",
        "HOME": str(tmp_path),
    }
    made = run_cli(env, "credentials", "create", "--project-id", PROJECT)
    assert made.returncode == 0, made.stderr
    out = fields(made.stdout)
    creds = Creds(PROJECT, out["access_key"], out["secret_key"])
    seen = Haystacks()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    remote = types.SimpleNamespace(url=url)  # what signed() needs of a LiveService
    log = tmp_path / "serve.log"
    token = target_id = ""

    def call(method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        r = signed(remote, creds, method, f"/v2/{PROJECT}{path}", json_body=body, **kw)
        return seen.response(f"{method} {path}", r)

    def register(name: str, server: RedisServer, password: str) -> httpx.Response:
        addrs = f"127.0.0.1:{server.port}"
        return call("POST", "/instances", {"name": name, "addrs": addrs, "password": password})

    def finished(task_id: str, states: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
        shown: dict[str, Any] = {}

        def done() -> bool:
            shown.update(call("GET", f"/migration-task/{task_id}").json())
            return shown["status"] in states

        wait_until(done, timeout=60, interval=0.2, what=f"task {task_id} to reach {states}")
        return shown

    def online(name: str, method: str, source_password: str) -> tuple[str, httpx.Response]:
        made = call(
            "POST",
            "/migration/instance",
            {"name": name, "vpc_id": "v", "subnet_id": "s", "security_group_id": "g"},
        ).json()
        body = {
            "migration_method": method,
            "resume_mode": "auto",
            "source_instance": {"addrs": f"127.0.0.1:{source.port}", "password": source_password},
            "target_instance": {"addrs": f"127.0.0.1:{target.port}", "password": tgt_pw},
        }
        call("GET", f"/jobs/{made['job_id']}")
        return made["instance_id"], call("POST", f"/migration/{made['instance_id']}/task", body)

    def rdb_import(name: str, files: dict[str, Any], password: str) -> httpx.Response:
        body = {
            "task_name": name,
            "migration_type": "backupfile_import",
            "migration_method": "full_amount_migration",
            "backup_files": files,
            "target_instance": {"id": target_id, "password": password},
        }
        return call("POST", "/migration-task", body)

    with serve_cli(env, "--port", str(port), url=url, log=log, command=CLI_DEBUG_LOGGING):
        token = call("POST", "/auth/tokens").json()["token"]
        assert call("GET", "/instances", headers={"X-Auth-Token": token}).status_code == 200

        # The inventory: two endpoints behind passwords, and one refused for a wrong password.
        r = register("leak-source", source, src_pw)
        assert r.status_code == 200, r.text
        source_id = r.json()["instance_id"]
        r = register("leak-target", target, tgt_pw)
        assert r.status_code == 200, r.text
        target_id = r.json()["instance_id"]
        refused = register("leak-wrong", source, wrong_pw)
        assert (refused.status_code, refused.json()["error_code"]) == (400, "DCS.4080"), refused.text
        closed = f"127.0.0.1:{free_port()}"
        r = call("POST", "/instances", {"name": "leak-closed", "addrs": closed, "password": wrong_pw})
        assert (r.status_code, r.json()["error_code"]) == (400, "DCS.4063"), r.text
        call("GET", f"/instances/{source_id}")

        # Online: a full migration to the end, an incremental one until stopped, a wrong password.
        full_id, r = online("leak-full", "full_amount_migration", src_pw)
        assert r.status_code == 200, r.text
        assert finished(full_id)["status"] == "SUCCESS"
        incr_id, r = online("leak-incr", "incremental_migration", src_pw)
        assert r.status_code == 200, r.text
        finished(incr_id, ("INCRMIGEATING", "FAILED"))
        source.client().set("written-later", "1")
        wait_until(lambda: target.client().get("written-later") == b"1", timeout=30, what="incr sync")
        call("POST", f"/migration-task/{incr_id}/stop")
        assert finished(incr_id)["status"] == "TERMINATED"
        legacy = {
            "task_name": "leak-legacy",
            "migration_type": "online_migration",
            "migration_method": "full_amount_migration",
            "source_instance": {"addrs": f"127.0.0.1:{source.port}", "password": src_pw},
            "target_instance": {"id": target_id, "password": tgt_pw},
        }
        r = call("POST", "/migration-task", legacy)
        assert r.status_code == 200, r.text
        assert finished(r.json()["id"])["status"] == "SUCCESS"
        _, r = online("leak-badpw", "full_amount_migration", wrong_pw)
        assert (r.status_code, r.json()["error_code"]) == (400, "DCS.4080"), r.text
        # A task whose source changed its password while it was stopped fails when restarted.
        source.client().config_set("requirepass", wrong_pw)
        source.password = wrong_pw
        r = call("POST", "/migration-tasks/batch-restart", {"migration_tasks": [incr_id]})
        assert r.status_code == 200, r.text
        assert finished(incr_id, ("FAILED",))["status"] == "FAILED"
        source.client().config_set("requirepass", src_pw)
        source.password = src_pw

        # Imports: an RDB file from the bucket, the same with a wrong target password, a backup.
        shutil.copy(source.save(), bucket / "dump.rdb")
        files = {
            "file_source": "self_build_obs",
            "bucket_name": "local",
            "files": [{"file_name": "dump.rdb"}],
        }
        r = rdb_import("leak-import", files, tgt_pw)
        assert r.status_code == 200, r.text
        assert finished(r.json()["id"])["status"] == "SUCCESS"
        r = rdb_import("leak-import-badpw", files, wrong_pw)
        assert (r.status_code, r.json()["error_code"]) == (400, "DCS.4080"), r.text
        r = call("POST", f"/instances/{source_id}/backups", {"remark": "leak test"})
        assert r.status_code == 200, r.text
        backup_id = r.json()["backup_id"]

        def backed_up() -> bool:
            rows = call("GET", f"/instances/{source_id}/backups").json()["backup_record_response"]
            return any(b["backup_id"] == backup_id and b["status"] == "succeed" for b in rows)

        wait_until(backed_up, timeout=60, interval=0.2, what="the backup")
        r = rdb_import("leak-restore", {"file_source": "backup_record", "backup_id": backup_id}, tgt_pw)
        assert r.status_code == 200, r.text
        assert finished(r.json()["id"])["status"] == "SUCCESS"

        # Everything the API shows about the work done.
        listed = call("GET", "/migration-tasks", query="limit=100").json()["migration_tasks"]
        assert len(listed) == 6  # full, incremental, legacy, badpw (never configured), import, restore
        for task in listed:
            call("GET", f"/migration-task/{task['task_id']}")
            call("GET", f"/migration-task/{task['task_id']}/stats")
            logs = call("GET", f"/migration-task/{task['task_id']}/logs", query="limit=1000").json()
            for n, line in enumerate(logs["migration_logs"]):
                seen.add(f"task log {task['task_name']} #{n}", line["message"].encode())
        call("GET", "/instances")
        seen.files("data dir (serving)", data_dir)

    seen.add("serve output", log.read_bytes())
    stored = seen.files("data dir (stopped)", data_dir)
    for admin in (["tasks"], ["instances"], ["credentials", "list"]):
        done = run_cli(env, *admin)
        assert done.returncode == 0, done.stderr
        seen.add(f"cachemigrate {' '.join(admin)}", (done.stdout + done.stderr).encode())

    # The search can find what it looks for: the places hold the work (not empty or elsewhere).
    database = data_dir / "cachemigrate.db"
    assert database in stored and creds.ak.encode() in database.read_bytes()
    output = seen.places["serve output"]
    assert f"POST /v2/{PROJECT}/instances".encode() in output and b"DEBUG:" in output, output[-2000:]
    assert any(k.startswith("task log leak-incr") for k in seen.places)
    secret_values = {
        "source password": src_pw.encode(),
        "target password": tgt_pw.encode(),
        "wrong password": wrong_pw.encode(),
        "SK": creds.sk.encode(),
        "X-Auth-Token": token.encode(),
        "Fernet key": fernet_key.encode(),
        "Fernet key bytes": base64.urlsafe_b64decode(fernet_key),
    }
    issued_token = [k for k in seen.places if "POST /auth/tokens" in k]  # the one place it belongs
    leaks = seen.leaks(secret_values, skip={"X-Auth-Token": set(issued_token)})
    needles = sum(len(encoded_forms(raw)) for raw in secret_values.values())
    size = sum(map(len, seen.places.values()))
    print(f"searched {len(seen.places)} places ({size:,} bytes) for {needles} spellings of 7 secrets")
    assert not leaks, "\n".join(leaks[:30])
