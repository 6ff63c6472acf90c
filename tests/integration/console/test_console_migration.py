"""The console's main path in a real browser: sign in, register the instances, create a full +
incremental migration, watch it reach INCRMIGEATING with the charts moving, verify it, stop it,
read its log, find it in the list; the page's numbers are the API's; it reads at phone width."""

from __future__ import annotations

import os
import random
import statistics
import threading
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from support.console import EXPECT_MS, STATIC_DIR, STATIC_FILES, Console, chromium_context
from support.poll import wait_until
from support.servers import RedisServer

SLOW_MS = 180_000  # a migration on a loaded machine


class Writer(threading.Thread):
    """Keeps changing the source while the test watches the migration follow it."""

    def __init__(self, server: RedisServer) -> None:
        super().__init__(daemon=True)
        self.client = server.client()
        self.halt = threading.Event()
        self.ops = 0

    def run(self) -> None:
        rng = random.Random(14)
        while not self.halt.is_set():
            p = self.client.pipeline(transaction=False)
            for _ in range(100):
                p.set(f"live:{rng.randrange(2000)}", rng.random())
            p.execute()
            self.ops += 100
            self.halt.wait(0.02)  # paces the load; nothing waits on it

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def register(console: Console, name: str, server: RedisServer) -> None:
    page = console.page
    page.get_by_role("link", name="Instances").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Address").fill(f"127.0.0.1:{server.port}")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text(f"Registered {name}.")).to_be_visible()
    expect(page.locator(f"#instances tr[data-name='{name}']")).to_be_visible()


def pick(page: Any, group: str, label: str) -> None:
    """Choose an instance in the Source or Target picker of the create page."""
    page.get_by_role("group", name=group).get_by_label("Instance").select_option(label=label)


def points(page: Any, chart: str) -> int:
    return int(page.locator(f"figure[data-chart={chart}]").get_attribute("data-points") or 0)


def test_incremental_migration(
    console: Console, redis_factory: Callable[..., RedisServer], console_figures: dict[str, Any]
) -> None:
    source, target = redis_factory("source"), redis_factory("target")
    c = source.client()
    pipe = c.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"key:{i}", f"value-{i}" * 4)
    pipe.execute()
    page = console.page

    console.sign_in()
    console.shot("tasks-empty")
    register(console, "orders-src", source)
    register(console, "orders-tgt", target)
    row = page.locator("#instances tr[data-name='orders-src']")
    row.get_by_role("button", name="Test connection").click()
    expect(row.get_by_role("status")).to_contain_text("Reachable: redis")
    console.shot("instances")

    writer = Writer(source)
    writer.start()
    try:
        page.get_by_role("link", name="Create task").first.click()
        page.get_by_label("Online migration, full + incremental").check()
        page.get_by_label("Task name").fill("orders-online")
        pick(page, "Source", f"orders-src (127.0.0.1:{source.port})")
        pick(page, "Target", f"orders-tgt (127.0.0.1:{target.port})")
        console.shot("create")
        page.get_by_role("button", name="Create task").click()

        expect(page.get_by_role("heading", name="orders-online")).to_be_visible()
        badge = page.locator(".status-line .badge")
        expect(badge).to_have_text("INCRMIGEATING", timeout=SLOW_MS)
        expect(page.locator("#full-progress")).to_have_attribute("value", "100")
        # The charts move: new samples keep coming, and the writes show as target ops.
        first = points(page, "keys")
        wait_until(lambda: points(page, "keys") >= first + 3, timeout=60, what="three more chart samples")
        wait_until(
            lambda: float(page.locator("figure[data-chart=keys]").get_attribute("data-last") or 0) > 0,
            timeout=60, what="a sample with target ops > 0",
        )
        assert page.locator("figure[data-chart=keys] polyline").count() == 1
        expect(page.locator("#log")).to_contain_text("migration.incr.start")
        console.shot("task-incremental")

        task_id = page.url.rsplit("/", 1)[-1]
        measure(console, task_id, console_figures)

        # A wrong state, where the action was taken: a running task cannot be deleted.
        page.get_by_role("button", name="Delete").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("must be stopped first")
        dialog.get_by_role("button", name="Delete the task").click()
        expect(page.locator("#action-messages [role=alert]")).to_contain_text("DCS.4957")
        console.shot("task-delete-refused")
    finally:
        writer.stop()

    page.get_by_role("button", name="Verify").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Compares the keys of orders-tgt with orders-src")
    dialog.get_by_role("button", name="Start verification").click()
    expect(page.locator("#action-messages [role=status]")).to_contain_text("Verification started")
    done = page.locator("#verifications tbody tr[data-status=SUCCESS]")
    expect(done).to_have_count(1, timeout=SLOW_MS)
    report = console.api("GET", f"/migration-task/{task_id}/verifications")["verifications"][0]["report"]
    expect(done.locator("td").nth(3)).to_have_text(f"{report['keys_compared']:,}")

    page.get_by_role("button", name="Stop").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("stops copying from orders-src to orders-tgt")
    dialog.get_by_role("button", name="Stop the migration").click()
    expect(badge).to_have_text("TERMINATED", timeout=SLOW_MS)
    # Stopped, the numbers hold still: the page shows exactly what the API answers.
    stats = console.api("GET", f"/migration-task/{task_id}/stats")
    numbers = page.locator(".numbers")
    expect(numbers).to_have_attribute("data-target", stats["target_dbsize"])
    expect(numbers).to_have_attribute("data-source", stats["source_dbsize"])
    expect(numbers).to_have_attribute("data-offset", stats["offset"])
    progress = str(float(stats["full_migration_progress"])).removesuffix(".0")
    expect(page.locator("#full-progress")).to_have_attribute("value", progress)

    # The log, filtered by level.
    log = page.locator("#log")
    expect(log).to_contain_text("migration.stop")
    page.get_by_label("Level").select_option("INFO")
    expect(log.locator("tbody tr[data-level=INFO]").first).to_be_visible()
    expect(log.locator("tbody tr:not([data-level=INFO])")).to_have_count(0)
    page.get_by_label("Level").select_option("ERROR")
    expect(log).to_contain_text("No log lines at this level.")
    page.get_by_label("Level").select_option("")
    expect(log).to_contain_text("migration started")
    console.shot("task-stopped")

    # The list: filter by name and by status.
    page.get_by_role("link", name="← All tasks").click()
    page.get_by_label("Name contains").fill("orders")
    page.get_by_label("Name contains").press("Enter")
    row = page.locator(f"tbody tr[data-task='{task_id}']")
    expect(row).to_contain_text("Online, full + incremental")
    expect(row.locator(".badge")).to_have_text("TERMINATED")
    expect(row.locator(".pct")).to_have_text(f"{stats['full_migration_progress']}%")
    page.get_by_label("Status").select_option("FAILED")
    expect(page.locator("tbody")).to_contain_text("No task matches the filter.")
    page.get_by_label("Status").select_option("TERMINATED")
    expect(row).to_be_visible()
    expect(page.locator("#tasks-count")).to_have_text("Tasks 1\u20131 of 1")
    console.shot("tasks-filtered")

    # A phone-width window: everything in the width, nothing to scroll sideways but tables.
    page.set_viewport_size({"width": 390, "height": 844})
    for where in ("#/tasks", f"#/task/{task_id}", "#/create", "#/instances", "#/backups"):
        page.goto(f"{console.url}{where}")
        expect(page.locator("main h1")).to_be_visible()
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{where} is {width} px wide at 390 px"
        console.shot(f"phone-{where.strip('#/').split('/')[0]}")


LOADS = 5  # cold loads measured: the machine is shared, one load says little


def measure(console: Console, task_id: str, figures: dict[str, Any]) -> None:
    """Page weight and first render of the task detail page, in fresh browser contexts (an empty
    cache each) signed in with the same token: what a user opening a link to it waits for."""
    session = console.page.evaluate("sessionStorage.getItem('cachemigrate.session')")
    runs = [cold_load(console, task_id, session) for _ in range(LOADS)]
    perf = runs[-1]
    # What the browser loaded is the project's files, byte for byte, and only what the page needs.
    loaded = {path.removeprefix("/console/"): size for path, size in perf["assets"]}
    assert loaded == {name: (STATIC_DIR / name).stat().st_size for name in loaded}, loaded
    assert {"style.css", "js/app.js", "js/task.js", "js/chart.js"} <= set(loaded)
    assert not {"js/create.js", "js/backups.js", "js/sha256.js"} & set(loaded)
    assert perf["html_bytes"] == (STATIC_DIR / "index.html").stat().st_size
    out: dict[str, Any] = {
        "html_bytes": perf["html_bytes"],
        "asset_bytes": perf["asset_bytes"],
        "total_bytes": perf["html_bytes"] + perf["asset_bytes"],
        "assets": perf["assets"],
        "all_console_files_bytes": sum(p.stat().st_size for p in STATIC_FILES),
        "cold_loads": LOADS,
        "load_average": os.getloadavg(),
    }
    for key in ("first_contentful_paint_ms", "dom_content_loaded_ms", "task_rendered_ms"):
        values = sorted(float(r[key]) for r in runs if r[key] is not None)
        out[key] = {"median": round(statistics.median(values), 1), "min": round(values[0], 1),
                    "max": round(values[-1], 1)}
    figures["task_detail_page"] = out
    print(f"\ntask detail page: {out}")


def cold_load(console: Console, task_id: str, session: str) -> dict[str, Any]:
    with chromium_context(console.page.context.browser, session) as page:
        page.goto(f"{console.url}#/task/{task_id}")
        expect(page.get_by_role("heading", name="orders-online")).to_be_visible(timeout=EXPECT_MS)
        # (not wait_for_function: its string predicate is an eval, which the console's CSP forbids)
        wait_until(
            lambda: page.evaluate("performance.getEntriesByName('cm-task-rendered').length > 0"),
            timeout=EXPECT_MS / 1000, what="the task page's first render with the API's numbers",
        )
        result: dict[str, Any] = page.evaluate(
            """() => {
              const nav = performance.getEntriesByType('navigation')[0];
              const assets = performance.getEntriesByType('resource')
                .filter((r) => new URL(r.name).pathname.startsWith('/console/'));
              const paint = performance.getEntriesByName('first-contentful-paint')[0];
              return {
                html_bytes: nav.encodedBodySize,
                asset_bytes: assets.reduce((n, r) => n + r.encodedBodySize, 0),
                assets: assets.map((r) => [new URL(r.name).pathname, r.encodedBodySize]),
                first_contentful_paint_ms: paint ? paint.startTime : null,
                dom_content_loaded_ms: nav.domContentLoadedEventEnd,
                task_rendered_ms: performance.getEntriesByName('cm-task-rendered')[0].startTime,
              };
            }"""
        )
        return result
