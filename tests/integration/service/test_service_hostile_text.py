"""Text no database keeps as sent (NUL, which PostgreSQL refuses; a lone surrogate, which JSON
lets through and UTF-8 cannot encode), in bodies, lists, path and query parameters: the same
DCS 4xx on SQLite and on PostgreSQL, never a 500 (found by scripts/api_fuzz.py --postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveService, make_settings, signed
from support.pg import pg_schema

ONLINE = (
    b'{"name": "hostile", "vpc_id": "v", "subnet_id": "s", "security_group_id": "g", "description": "%s"}'
)
IMPORT = (
    b'{"task_name": "hostile", "migration_type": "backupfile_import", "migration_method": '
    b'"full_amount_migration", "backup_files": {"file_source": "backup_record", "backup_id": "%s"}, '
    b'"target_instance": {"id": "x"}}'
)
# (method, path after /v2/{project}, body with %s for the text, query with %s, status, DCS code)
CASES = [
    ("POST", "/migration/instance", ONLINE, "", 400, "DCS.4063"),
    (
        "POST",
        "/instances",
        b'{"name": "hostile", "addrs": "127.0.0.1:1", "description": "%s"}',
        "",
        400,
        "DCS.4063",
    ),
    ("POST", "/migration-task", IMPORT, "", 400, "DCS.4063"),
    ("POST", "/migration-task/batch-stop", b'{"migration_tasks": ["%s"]}', "", 400, "DCS.4063"),
    ("POST", "/migration-tasks/batch-restart", b'{"migration_tasks": ["%s"]}', "", 400, "DCS.4063"),
    ("DELETE", "/migration-tasks/delete", b'{"task_id_list": ["%s"]}', "", 400, "DCS.4063"),
    ("GET", "/migration-tasks", b"", "name=%s", 400, "DCS.4063"),
    ("GET", "/instances", b"", "name=%s", 400, "DCS.4063"),
    ("GET", "/migration-task/%s", b"", "", 400, "DCS.4133"),
    ("GET", "/migration-task/%s/logs", b"", "", 400, "DCS.4133"),
    ("GET", "/instances/%s", b"", "", 404, "DCS.3022"),
    ("GET", "/instances/%s/backups", b"", "", 404, "DCS.3022"),
    ("GET", "/jobs/%s", b"", "", 400, "DCS.4063"),
]
# The text as JSON writes it in a body, and as a URL writes it in a path or query.
TEXTS = {"NUL": (b"a\\u0000b", "a%00b"), "lone surrogate": (b"a\\ud800b", "a%ED%A0%80b")}


@pytest.fixture(params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path: Path, service_factory: Any, fake_executor: Any
) -> Iterator[Any]:
    if request.param == "sqlite":
        yield service_factory(make_settings(tmp_path), executor=fake_executor)
        return
    with pg_schema("hostile") as (_, url):
        yield service_factory(make_settings(tmp_path, database_url=url), executor=fake_executor)


def test_unstorable_text_is_a_dcs_4xx_on_every_database(live: LiveService) -> None:
    creds = live.credentials()
    answers = []
    for method, path, body, query, status, code in CASES:
        for what, (in_json, in_url) in TEXTS.items():
            if ("%s" in path or query) and what == "lone surrogate":
                continue  # Starlette decodes a URL as UTF-8 with replacement: nothing to refuse
            r = signed(
                live,
                creds,
                method,
                f"/v2/{creds.project_id}{path.replace('%s', in_url)}",
                raw=body.replace(b"%s", in_json) if body else None,
                query=query.replace("%s", in_url),
            )
            got = (r.status_code, r.json().get("error_code"))
            answers.append((method, path, query, what, got, (status, code)))
    wrong = [a for a in answers if a[4] != a[5]]
    assert not wrong, "\n".join(map(str, wrong))
    # Nothing was half-done: no task or instance came into being.
    assert signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-tasks").json()["count"] == 0
    assert signed(live, creds, "GET", f"/v2/{creds.project_id}/instances").json()["instance_num"] == 0
