"""Every error a console user can hit, shown where the action was taken, in the API's words:
a wrong key or token, an unreachable instance, a refused password, a name the API refuses, an
action in the wrong state."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from support.console import Console
from support.servers import RedisServer, free_port

SLOW_MS = 180_000


def test_wrong_key_and_token(console: Console) -> None:
    page = console.page
    page.goto(console.url)
    page.get_by_label("Project ID").fill(console.creds.project_id)
    page.get_by_label("Access key (AK)").fill(console.creds.ak)
    wrong = console.creds.sk[:-1] + ("x" if console.creds.sk[-1] != "x" else "y")
    page.get_by_label("Secret key (SK)").fill(wrong)
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("verify aksk signature fail (APIG.0301)")
    console.shot("wrong-sk")

    page.get_by_label("Access key (AK)").fill("NOSUCHACCESSKEY00000")
    page.get_by_role("button", name="Sign in").click()
    expect(alert).to_contain_text("APIG.0301")

    page.get_by_label("a token").check()
    page.get_by_label("Token (X-Auth-Token)").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(alert).to_contain_text("decrypt token fail (APIG.0301)")
    console.shot("wrong-token")

    # The right key of another project: the API's scope error.
    page.get_by_label("access key and secret key").check()
    page.get_by_label("Project ID").fill("another-project")
    page.get_by_label("Access key (AK)").fill(console.creds.ak)
    page.get_by_label("Secret key (SK)").fill(console.creds.sk)
    page.get_by_role("button", name="Sign in").click()
    expect(alert).to_contain_text("DCS.1004")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_unreachable_and_refused_instances(
    console: Console, redis_factory: Callable[..., RedisServer]
) -> None:
    locked = redis_factory("locked", password="right-password")
    doomed = redis_factory("doomed")
    console.sign_in()
    page = console.page
    page.get_by_role("link", name="Instances").click()
    form = page.get_by_role("form", name="Register an instance")

    form.get_by_label("Name", exact=True).fill("nobody-home")
    form.get_by_label("Address").fill(f"127.0.0.1:{free_port()}")
    form.get_by_role("button", name="Register").click()
    expect(form.get_by_role("alert")).to_contain_text("cannot be reached")
    expect(form.get_by_role("alert")).to_contain_text("DCS.4063")
    console.shot("unreachable")

    form.get_by_label("Address").fill(f"127.0.0.1:{locked.port}")
    form.get_by_label("Password").fill("wrong-password")
    form.get_by_role("button", name="Register").click()
    expect(form.get_by_role("alert")).to_contain_text("DCS.4080")

    form.get_by_label("Name", exact=True).fill("x")
    form.get_by_label("Password").fill("right-password")
    form.get_by_role("button", name="Register").click()
    expect(form.get_by_role("alert")).to_contain_text("DCS.4063")
    expect(form.get_by_role("alert")).to_contain_text("name")

    form.get_by_label("Name", exact=True).fill("doomed-one")
    form.get_by_label("Address").fill(f"127.0.0.1:{doomed.port}")
    form.get_by_label("Password").fill("")
    form.get_by_role("button", name="Register").click()
    expect(form.get_by_role("status")).to_have_text("Registered doomed-one.")
    doomed.stop()  # registered, then gone: the test of its connection says so beside the button
    row = page.locator("#instances tr[data-name='doomed-one']")
    row.get_by_role("button", name="Test connection").click()
    expect(row.get_by_role("alert")).to_contain_text("cannot be reached")
    console.shot("test-connection-failed")

    # A task whose source cannot be reached: the API's message, at the create button.
    page.get_by_role("link", name="Create task").first.click()
    page.get_by_label("Task name").fill("never-runs")
    source = page.get_by_role("group", name="Source")
    source.get_by_label("Instance").select_option(label="Another address…")
    source.get_by_label("Address").fill(f"127.0.0.1:{free_port()}")
    page.get_by_role("button", name="Create task").click()
    alert = page.get_by_role("form", name="New migration task").get_by_role("alert")
    expect(alert).to_contain_text("DCS.4063")
    expect(alert).to_contain_text("exists but is not configured")
    console.shot("create-unreachable")
    page.get_by_label("Task name").fill("ab")
    page.get_by_role("button", name="Create task").click()
    expect(alert).to_contain_text("Invalid name parameter")


def test_wrong_state(console: Console, redis_factory: Callable[..., RedisServer]) -> None:
    source, target = redis_factory("source"), redis_factory("target")
    source.client().mset({f"k{i}": i for i in range(200)})
    a = console.api("POST", "/instances", {"name": "state-src", "addrs": f"127.0.0.1:{source.port}"})
    b = console.api("POST", "/instances", {"name": "state-tgt", "addrs": f"127.0.0.1:{target.port}"})
    console.sign_in()
    page = console.page
    page.get_by_role("link", name="Create task").first.click()
    page.get_by_label("Online migration, full", exact=True).check()
    page.get_by_label("Task name").fill("one-shot")
    page.get_by_role("group", name="Source").get_by_label("Instance").select_option(a["instance_id"])
    page.get_by_role("group", name="Target").get_by_label("Instance").select_option(b["instance_id"])
    page.get_by_role("button", name="Create task").click()
    expect(page.locator(".status-line .badge")).to_have_text("SUCCESS", timeout=SLOW_MS)
    expect(page.locator("#full-progress")).to_have_attribute("value", "100")
    box = page.locator("#action-messages")

    # From the keyboard: Enter on Stop opens the confirmation with the focus on its button,
    # Escape closes it and nothing happens; Enter on the confirmation asks the API.
    page.get_by_role("button", name="Stop", exact=True).focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Stop the migration")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(box.get_by_role("alert")).to_have_count(0)
    page.get_by_role("button", name="Stop", exact=True).press("Enter")
    expect(dialog.get_by_role("button", name="Stop the migration")).to_be_focused()
    page.keyboard.press("Enter")
    expect(box.get_by_role("alert")).to_contain_text("DCS.4957")
    # A finished task (SUCCESS) can be neither stopped nor restarted, nor cut over.
    for button, confirm in (("Stop", "Stop the migration"), ("Restart", "Restart"),
                            ("Exchange IP", "Exchange the addresses"), ("Rollback IP", "Roll back")):
        page.get_by_role("button", name=button, exact=True).click()
        page.get_by_role("dialog").get_by_role("button", name=confirm, exact=True).click()
        expect(box.get_by_role("alert")).to_contain_text("DCS.4957")
        console.shot(f"wrong-state-{button.lower().replace(' ', '-')}")
    expect(page.locator(".status-line .badge")).to_have_text("SUCCESS")

    # Cancel leaves everything as it was; the confirmation said what deleting does.
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("The data in state-tgt and state-src is not touched")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name="one-shot")).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete the task").click()
    expect(page.get_by_role("heading", name="Migration tasks")).to_be_visible()
    expect(page.locator("tbody")).to_contain_text("No migration task yet")


def test_revoked_key_signs_out(console: Console) -> None:
    """A session whose AK is revoked (`cachemigrate credentials revoke`) ends at the next refresh:
    the sign-in page says why, in the API's words."""
    from cachemigrate.service.db import repo

    console.sign_in()
    page = console.page
    expect(page.locator("#tasks-count")).to_have_text("Tasks 0\u20130 of 0")
    svc = console.live.services
    svc.db.run_sync(repo.revoke_credential, access_key=console.creds.ak)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Signed out: ")
    expect(alert).to_contain_text("the credentials of this token were revoked")
    expect(alert).to_contain_text("APIG.0301")
    assert page.evaluate("sessionStorage.getItem('cachemigrate.session')") is None
    expect(page.locator("#nav")).to_be_hidden()
    console.shot("signed-out")
