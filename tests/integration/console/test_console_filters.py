"""Filter rules through the console: a wrong rule is refused with the API's message where the
task was created; the rules given in the form move exactly what the independent reference says
(support.filter_ref, compared with support.compare), and the task page shows them."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from support.compare import compare_keyspaces, keyspace
from support.console import Console
from support.filter_ref import expected, random_dataset
from support.servers import RedisServer

SLOW_MS = 180_000  # a migration on a loaded machine
RULES = {"block_key_prefix": ["temp:", "cache:"]}


def test_create_with_filter_rules(console: Console, redis_factory: Callable[..., RedisServer]) -> None:
    source, target = redis_factory("source"), redis_factory("target")
    # Long TTLs only: nothing expires while the test runs (the expiry rules are not under test).
    random_dataset(source.client(), n=150, dbs=(0, 1), ttl_short_s=3600)
    before = keyspace([source.client()])
    page = console.page
    console.sign_in()

    page.get_by_role("link", name="Create task").first.click()
    page.get_by_label("Online migration, full", exact=True).check()
    page.get_by_label("Task name").fill("filtered-copy")
    page.get_by_role("group", name="Source").get_by_label("Address").fill(f"127.0.0.1:{source.port}")
    page.get_by_role("group", name="Target").get_by_label("Address").fill(f"127.0.0.1:{target.port}")
    page.locator("#filter-rules summary").click()
    page.get_by_label("Leave keys with prefix behind").fill("\n".join(RULES["block_key_prefix"]))
    page.get_by_label("Leave keys matching behind").fill("([unclosed")
    page.get_by_role("button", name="Create task").click()
    # The API's 400, in its words, under the form; nothing of the task runs.
    alert = page.get_by_role("form", name="New migration task").get_by_role("alert")
    expect(alert).to_contain_text("Invalid filter parameter in the request: block_key_regex[0]: "
                                  "not a regular expression")
    expect(alert).to_contain_text("DCS.4063")
    console.shot("filter-refused")

    page.get_by_label("Leave keys matching behind").fill("")
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("heading", name="filtered-copy")).to_be_visible()
    rules = page.locator("#task-rules")
    expect(rules).to_contain_text("block_key_prefix")
    expect(rules).to_contain_text("temp:, cache:")
    expect(page.locator(".status-line .badge")).to_have_text("SUCCESS", timeout=SLOW_MS)
    console.shot("filter-task")
    task_id = page.url.rsplit("/", 1)[-1]
    assert console.api("GET", f"/migration-task/{task_id}")["filter"] == RULES

    want = expected(before, RULES)
    result = compare_keyspaces(want, keyspace([target.client()]))
    assert result.ok, result.summary()
    assert result.compared > 100
    assert len(want) < len(before)  # the rule left keys behind
