"""Backups, buckets and instances in the console, and the project scope: take a backup, import
from it, delete it and the instance; import files from a bucket; another project (signed in
with a token, or a sign-in link) sees none of it."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from support.console import Console, chromium_context, open_console, service_conftest
from support.servers import RedisServer

SLOW_MS = 180_000


def test_backup_import_and_delete(console: Console, redis_factory: Callable[..., RedisServer]) -> None:
    source, target = redis_factory("source"), redis_factory("target")
    source.client().mset({f"b{i}": f"v{i}" for i in range(500)})
    console.api("POST", "/instances", {"name": "backed-up", "addrs": f"127.0.0.1:{source.port}"})
    tgt = console.api("POST", "/instances", {"name": "restore-to", "addrs": f"127.0.0.1:{target.port}"})
    console.sign_in()
    page = console.page
    page.get_by_role("link", name="Backups").click()
    page.get_by_label("Instance").select_option(label=f"backed-up (127.0.0.1:{source.port})")
    page.get_by_label("Remark").fill("before the move")
    page.get_by_role("button", name="Take a backup").click()
    expect(page.get_by_role("form", name="Take a backup").get_by_role("status")).to_contain_text("started")
    row = page.locator("#backups tbody tr[data-status=succeed]")
    expect(row).to_have_count(1, timeout=SLOW_MS)
    expect(row).to_contain_text("before the move")
    console.shot("backups")

    row.get_by_role("link", name="Import from it").click()
    expect(page.get_by_label("Import a backup record")).to_be_checked()
    page.get_by_label("Task name").fill("from-backup")
    page.get_by_role("group", name="Target").get_by_label("Instance").select_option(tgt["instance_id"])
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("heading", name="from-backup")).to_be_visible()
    expect(page.locator(".status-line .badge")).to_have_text("SUCCESS", timeout=SLOW_MS)
    expect(page.locator(".endpoints")).to_contain_text("a backup record")
    assert target.client().dbsize() == 500
    console.shot("task-import")

    page.get_by_role("link", name="Backups").click()
    page.get_by_label("Instance").select_option(label=f"backed-up (127.0.0.1:{source.port})")
    row = page.locator("#backups tbody tr[data-backup]")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("it cannot be imported any more")
    dialog.get_by_role("button", name="Delete the backup").click()
    expect(page.locator("#backups")).to_contain_text("No backup of this instance yet.")

    page.get_by_role("link", name="Instances").click()
    inst = page.locator("#instances tr[data-name='backed-up']")
    inst.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete the instance").click()
    expect(inst).to_have_count(0)
    expect(page.locator("#instances tr[data-name='restore-to']")).to_be_visible()


def test_projects_see_only_their_own(console: Console, redis_factory: Callable[..., RedisServer]) -> None:
    """A's instance and task stay A's: B, signed in with a token, sees neither, and A's task's
    own address answers B as an unknown task (the API's DCS.4133)."""
    server = redis_factory("a-only")
    other = redis_factory("a-target")
    inst = console.api("POST", "/instances", {"name": "a-instance", "addrs": f"127.0.0.1:{server.port}"})
    task = console.api("POST", "/migration/instance", {
        "name": "a-task", "vpc_id": "v", "subnet_id": "s", "security_group_id": "g",
    })["instance_id"]
    console.api("POST", f"/migration/{task}/task", {
        "migration_method": "full_amount_migration", "resume_mode": "auto",
        "source_instance": {"id": inst["instance_id"]},
        "target_instance": {"addrs": f"127.0.0.1:{other.port}"},
    })

    b = console.live.credentials(project_id=uuid.uuid4().hex)
    r = service_conftest().signed(console.live, b, "POST", f"/v2/{b.project_id}/auth/tokens")
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    page = console.page
    page.goto(console.url)
    page.get_by_label("Project ID").fill(b.project_id)
    page.get_by_label("a token").check()
    page.get_by_label("Token (X-Auth-Token)").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Migration tasks")).to_be_visible()
    expect(page.locator("tbody")).to_contain_text("No migration task yet")
    expect(page.locator("#who-project")).to_have_text(f"Project {b.project_id}")
    page.get_by_role("link", name="Instances").click()
    expect(page.locator("#instances")).to_contain_text("No instance registered yet.")
    page.goto(f"{console.url}#/task/{task}")
    expect(page.get_by_role("alert")).to_contain_text("DCS.4133")
    console.shot("foreign-task")

    # A sign-in link (what `make demo --console` prints) signs in and leaves no token in the URL.
    with chromium_context(page.context.browser) as tab:
        tab.goto(f"{console.url}#/signin?project={console.creds.project_id}&token={token}")
        expect(tab.get_by_role("alert")).to_contain_text("DCS.1004")  # B's token, A's project
        assert token not in tab.url
        a_token = service_conftest().signed(
            console.live, console.creds, "POST", f"/v2/{console.creds.project_id}/auth/tokens"
        ).json()["token"]
        tab.goto(f"{console.url}#/signin?project={console.creds.project_id}&token={a_token}")
        expect(tab.locator("tbody tr[data-task]")).to_contain_text("a-task")
        assert a_token not in tab.url
        kept = json.loads(tab.evaluate("sessionStorage.getItem('cachemigrate.session')"))
        assert kept["projectId"] == console.creds.project_id


def test_bucket_import(
    chromium_browser: Any, console_service: Any, redis_factory: Callable[..., RedisServer]
) -> None:
    """An import of files from the bucket the operator bound to the project (make_settings: the
    bucket "local" serves the service tests' PROJECT): a missing file is the API's error at the
    create button; the file that is there is imported."""
    source, target = redis_factory("dumped"), redis_factory("imported")
    source.client().mset({f"f{i}": i for i in range(300)})
    live = console_service
    bucket = Path(urlsplit(live.settings.buckets["local"].url).path)
    shutil.copy(source.save(), bucket / "console.rdb")
    creds = live.credentials(project_id=service_conftest().PROJECT)
    with open_console(chromium_browser, live, "bucket_import", creds) as console:
        tgt = console.api("POST", "/instances", {"name": "bucket-tgt", "addrs": f"127.0.0.1:{target.port}"})
        console.sign_in()
        page = console.page
        page.get_by_role("link", name="Create task").first.click()
        page.get_by_label("Import backup files from a bucket").check()
        expect(page.get_by_role("group", name="Source")).to_be_hidden()
        page.get_by_label("Task name").fill("from-bucket")
        page.get_by_role("textbox", name="Bucket").fill("local")
        page.get_by_role("textbox", name="Files").fill("no-such.rdb")
        page.get_by_role("group", name="Target").get_by_label("Instance").select_option(tgt["instance_id"])
        page.get_by_role("button", name="Create task").click()
        alert = page.get_by_role("form", name="New migration task").get_by_role("alert")
        expect(alert).to_contain_text("DCS.4063")
        expect(alert).to_contain_text("no-such.rdb")
        console.shot("bucket-missing-file")
        page.get_by_role("textbox", name="Files").fill("console.rdb")
        page.get_by_role("button", name="Create task").click()
        expect(page.get_by_role("heading", name="from-bucket")).to_be_visible()
        expect(page.locator(".status-line .badge")).to_have_text("SUCCESS", timeout=SLOW_MS)
        expect(page.locator(".endpoints")).to_contain_text("bucket local")
        expect(page.locator(".endpoints")).to_contain_text("console.rdb")
        expect(page.locator("#log")).to_contain_text("console.rdb")
        assert target.client().dbsize() == 300
        console.shot("task-bucket-import")
