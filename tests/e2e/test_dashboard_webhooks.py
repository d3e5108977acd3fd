"""Store Settings → Webhooks in a real browser: endpoints, secrets, live delivery logs, plans."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.e2e.conftest import WEBHOOKS, Dashboard
from tests.support.api_helpers import unique_path
from tests.support.receiver import Receiver
from tests.support.routes import api_routes


def card(page: Page, endpoint_id: str) -> Locator:
    return page.locator(f"#ep-{endpoint_id}")


def scroll_to(locator: Locator) -> None:
    """Put an element at the top of the window (for a screenshot of it)."""
    locator.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + scrollY - 16)")


def open_deliveries(page: Page, endpoint_id: str) -> Locator:
    c = card(page, endpoint_id)
    c.locator("summary", has_text="Recent Deliveries").click()
    return c.locator("[data-live='deliveries']")


def test_add_endpoint_and_copy_its_secret(
    dash: Dashboard, page: Page, context: BrowserContext, receiver: Receiver
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=dash.svc.base_url)
    store_id, key = dash.svc.create_store(name="Jane's Ceramics")
    dash.login(page, store_id)
    # No endpoints yet: the Add Endpoint form is open, events come from the catalog.
    form = page.locator("#add-endpoint form")
    expect(form).to_be_visible()
    expect(form.get_by_label("order.created")).to_be_visible()
    expect(form).to_contain_text("A new order is placed")
    expect(form.get_by_label("seller.registered")).to_be_visible()
    dash.shoot(page, "add-endpoint")

    url = receiver.url(unique_path())
    page.get_by_label("Endpoint URL").fill(url)
    page.get_by_label("Description").fill("Inventory sync")
    form.get_by_label("order.created").check()
    page.get_by_role("button", name="Create Endpoint").click()

    expect(page).to_have_url(WEBHOOKS)
    created = page.locator("#created")
    expect(created.get_by_role("heading", name="Endpoint created")).to_be_visible()
    expect(created).to_contain_text("Verify every request")
    expect(created).to_contain_text("webhook-signature")
    (endpoint,) = dash.svc.request("GET", "/v1/endpoints", key).json()["data"]
    assert endpoint["url"] == url
    assert endpoint["events"] == ["order.created"]
    secret = dash.svc.request("GET", f"/v1/endpoints/{endpoint['id']}/secret", key).json()["secret"]
    expect(created.get_by_label("Signing secret")).to_have_value(secret)

    created.get_by_role("button", name="Copy").click()
    expect(created.get_by_role("button", name="Copied!")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    dash.shoot(page, "endpoint-created")

    c = card(page, endpoint["id"])
    expect(c).to_contain_text(url)
    expect(c).to_contain_text("Inventory sync")
    expect(c.locator(".pill")).to_have_text("Active")
    expect(c.locator(".last-triggered")).to_have_text("Never")
    # Reveal (fetched by the script, no reload) and copy from the endpoint itself.
    c.get_by_role("link", name="Reveal secret").click()
    expect(c.get_by_label("Signing secret")).to_have_value(secret)
    page.evaluate("navigator.clipboard.writeText('')")
    c.get_by_role("button", name="Copy").click()
    expect(c.get_by_role("button", name="Copied!")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/webhooks", "The URL must use https://."),
        ("not a url", "The URL must not contain spaces"),
        ("https://169.254.169.254/latest", "The URL must not point at"),
    ],
)
def test_bad_url_shows_an_inline_error(
    dash: Dashboard, page: Page, receiver: Receiver, url: str, message: str
) -> None:
    store_id, key = dash.svc.create_store()
    dash.svc.create_endpoint(key, receiver.url(unique_path()))
    dash.login(page, store_id)
    # With an endpoint, the form starts closed; open it from the keyboard.
    form = page.locator("#add-endpoint form")
    expect(form).to_be_hidden()
    page.locator("#add-endpoint summary").focus()
    page.keyboard.press("Enter")
    expect(form).to_be_visible()

    field = page.get_by_label("Endpoint URL")
    field.fill(url)
    form.get_by_label("Slack message").check()
    field.press("Enter")  # submits without any event selected: both fields are reported

    expect(page.locator("#endpoint-url-error")).to_contain_text(message)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value(url)  # what was typed and chosen is kept
    expect(form.get_by_label("Slack message")).to_be_checked()
    expect(page.locator("#endpoint-events-error")).to_have_text(
        "Select at least one event to receive."
    )
    assert len(dash.svc.request("GET", "/v1/endpoints", key).json()["data"]) == 1
    if url.startswith("http://"):
        dash.shoot(page, "add-endpoint-error", full_page=False)


def test_published_event_appears_live_as_green_200(
    dash: Dashboard, page: Page, receiver: Receiver
) -> None:
    store_id, key = dash.svc.create_store(name="Jane's Ceramics")
    path = unique_path()
    receiver.script(path, statuses=[200], body=b'{"received": true}')
    ep = dash.svc.create_endpoint(key, receiver.url(path), events=["order.created"])
    dash.login(page, store_id)
    deliveries = open_deliveries(page, ep["id"])
    expect(deliveries).to_contain_text("No deliveries yet")
    page.evaluate("window.__noReload = true")

    assert dash.svc.publish(store_id).status_code == 202

    row = deliveries.locator(".attempt").first
    expect(row.locator(".badge")).to_have_text("Success 200")
    expect(row.locator(".badge")).to_have_class("badge badge-ok")
    expect(row).to_contain_text("order.created")
    expect(row.locator(".attempt-ms")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(row.locator("time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    expect(card(page, ep["id"]).locator(".last-triggered")).to_have_text("just now")
    assert page.evaluate("window.__noReload") is True  # updated in place

    row.locator("summary").click()
    detail = row.locator(".attempt-detail")
    expect(detail).to_contain_text('"id": "ord_xyz789"')
    expect(detail).to_contain_text('"received": true')
    dash.shoot(page, "delivery-success")


def test_recent_deliveries_shows_the_ten_newest(
    dash: Dashboard, page: Page, receiver: Receiver
) -> None:
    """12 deliveries: the page lists exactly the 10 newest, newest first, and live updates
    keep it at 10."""
    store_id, key = dash.svc.create_store()
    path = unique_path()
    ep = dash.svc.create_endpoint(key, receiver.url(path), events=["order.created"])
    ids = []
    for n in range(1, 12):  # one at a time: attempts made in the same millisecond have no order
        ids.append(dash.svc.publish(store_id).json()["id"])
        receiver.wait_for(n, path)
    dash.login(page, store_id)
    deliveries = open_deliveries(page, ep["id"])
    rows = deliveries.locator(".attempt")
    expect(rows).to_have_count(10)
    page.evaluate("window.__noReload = true")
    ids.append(dash.svc.publish(store_id).json()["id"])
    expect(rows.first).to_contain_text(ids[-1])  # the 12th arrives live, at the top
    expect(rows).to_have_count(10)
    shown = [rows.nth(i).locator(".attempt-detail").text_content() or "" for i in range(10)]
    for event_id, text in zip(reversed(ids[2:]), shown, strict=True):
        assert event_id in text
    assert page.evaluate("window.__noReload") is True


def test_failing_endpoint_shows_red_badges_and_retries(
    dash: Dashboard, page: Page, receiver: Receiver
) -> None:
    store_id, key = dash.svc.create_store()
    path = unique_path()
    receiver.script(path, statuses=[500], body=b"<script>alert('owned')</script>upstream broke")
    ep = dash.svc.create_endpoint(key, receiver.url(path), description="Zapier")
    dash.login(page, store_id)
    deliveries = open_deliveries(page, ep["id"])

    dash.svc.publish(store_id)

    badges = deliveries.locator(".attempt .badge")
    expect(badges).to_have_text(["Failure 500"] * 3)
    for i in range(3):
        expect(badges.nth(i)).to_have_class("badge badge-fail")
    expect(deliveries.locator(".tag-retry")).to_have_text(["Retry #2", "Retry #1"])
    c = card(page, ep["id"])
    # The service runs with DISABLE_AFTER=3: the third failure auto-disables the endpoint.
    expect(c.locator(".pill")).to_have_text("Auto-disabled")
    expect(c).to_contain_text("Auto-disabled after 3 consecutive failures")
    expect(c).to_contain_text("Fix the issue with your endpoint")
    expect(c.locator(".failures")).to_have_text("3")

    newest = deliveries.locator(".attempt").first
    newest.locator("summary").click()
    # The receiver's body is shown as text, never run (the page fixture fails on any dialog).
    expect(newest.locator("pre").last).to_contain_text("<script>alert('owned')</script>")
    dash.shoot(page, "delivery-failures")

    # Fixed? Enable it again: the counter resets.
    receiver.script(path, statuses=[200])
    c.get_by_role("button", name="Enable").click()
    expect(c.locator(".pill")).to_have_text("Active")
    expect(c.locator(".failures")).to_have_text("0")


def test_disable_enable_and_delete(dash: Dashboard, page: Page, receiver: Receiver) -> None:
    store_id, key = dash.svc.create_store()
    ep = dash.svc.create_endpoint(key, receiver.url(unique_path()))
    dash.login(page, store_id)
    c = card(page, ep["id"])

    c.get_by_role("button", name="Disable").click()
    expect(page.locator("#notice")).to_contain_text("Endpoint disabled")
    expect(c.locator(".pill")).to_have_text("Disabled")
    assert dash.svc.endpoint(key, ep["id"])["enabled"] is False

    c.get_by_role("button", name="Enable").click()
    expect(page.locator("#notice")).to_contain_text("Endpoint enabled")
    expect(c.locator(".pill")).to_have_text("Active")
    assert dash.svc.endpoint(key, ep["id"])["enabled"] is True

    dialog = page.locator("#confirm-dialog")
    c.get_by_role("button", name="Delete").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("This action cannot be undone.")
    dash.shoot(page, "delete-confirmation", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(c).to_be_visible()

    c.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete endpoint").click()
    expect(page.locator("#notice")).to_contain_text("Endpoint deleted")
    expect(c).to_have_count(0)
    assert dash.svc.request("GET", f"/v1/endpoints/{ep['id']}", key).status_code == 404


def test_test_event_resend_and_rotate_secret(
    dash: Dashboard, page: Page, receiver: Receiver
) -> None:
    store_id, key = dash.svc.create_store()
    path = unique_path()
    ep = dash.svc.create_endpoint(key, receiver.url(path), events=["order.created"])
    old = dash.svc.request("GET", f"/v1/endpoints/{ep['id']}/secret", key).json()["secret"]
    dash.login(page, store_id)
    c = card(page, ep["id"])

    c.get_by_label("Event type for the test").select_option("seller.registered")
    c.get_by_role("button", name="Send test event").click()
    expect(page.locator("#notice")).to_contain_text("Test event queued")
    deliveries = c.locator("[data-live='deliveries']")
    expect(deliveries).to_be_visible()  # opened for you
    row = deliveries.locator(".attempt").first
    expect(row.locator(".badge")).to_have_text("Success 200")
    expect(row).to_contain_text("seller.registered")
    expect(row.locator(".tag")).to_have_text("Manual")

    row.locator("summary").click()
    row.get_by_role("button", name="Resend").click()
    expect(page.locator("#notice")).to_contain_text("queued for another delivery")
    expect(deliveries.locator(".attempt")).to_have_count(2)
    assert len(receiver.wait_for(2, path)) == 2

    c.get_by_role("button", name="Rotate secret").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Rotate secret").click()
    expect(page.locator("#notice")).to_contain_text("Signing secret rotated")
    new = dash.svc.request("GET", f"/v1/endpoints/{ep['id']}/secret", key).json()["secret"]
    assert new != old
    expect(c.get_by_label("Signing secret")).to_have_value(new)


@pytest.mark.parametrize("fmt", ["slack", "discord"])
def test_chat_format_endpoint_receives_a_chat_message(
    dash: Dashboard, page: Page, receiver: Receiver, fmt: str
) -> None:
    store_id, key = dash.svc.create_store(name="Jane's Ceramics")
    dash.login(page, store_id)
    form = page.locator("#add-endpoint form")
    standard = form.get_by_label("Standard JSON (signed)")
    expect(standard).to_be_checked()  # the default
    expect(form).to_contain_text("Mattermost and Rocket.Chat accept Slack's format")
    label = {"slack": "Slack message", "discord": "Discord message"}[fmt]

    path = unique_path(fmt)
    url = receiver.url(path)
    page.get_by_label("Endpoint URL").fill(url)
    form.get_by_label(label).check()
    expect(standard).not_to_be_checked()
    form.get_by_label("order.created").check()
    page.get_by_role("button", name="Create Endpoint").click()

    expect(page.locator("#created")).to_be_visible()
    (endpoint,) = dash.svc.request("GET", "/v1/endpoints", key).json()["data"]
    assert endpoint["format"] == fmt
    c = card(page, endpoint["id"])
    expect(c.locator(".tag-format")).to_have_text(label)

    event_id = dash.svc.publish(store_id).json()["id"]
    (got,) = receiver.wait_for(1, path)
    assert got.headers["webhook-id"] == event_id  # signed like any delivery
    body = json.loads(got.body)
    order = "New order ord_xyz789 — $99.99 from John Doe, 1 item: Handmade Pottery"
    if fmt == "slack":
        assert body["text"] == order
        assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": order}}
    else:
        assert body["content"] == order.replace("_", "\\_")  # Discord markdown, escaped
        assert body["embeds"][0]["title"] == "New order ord\\_xyz789"
    # The delivery log shows the message as it was sent.
    deliveries = open_deliveries(page, endpoint["id"])
    row = deliveries.locator(".attempt").first
    expect(row.locator(".badge")).to_have_text("Success 200")
    row.locator("summary").click()
    sent = row.locator(".attempt-detail pre").first
    expect(sent).to_contain_text('"blocks"' if fmt == "slack" else '"embeds"')
    expect(sent).not_to_contain_text('"data"')
    if fmt == "slack":
        scroll_to(c)
        dash.shoot(page, "slack-endpoint", full_page=False)


def test_recover_missed_events(dash: Dashboard, page: Page, receiver: Receiver) -> None:
    store_id, key = dash.svc.create_store()
    path = unique_path()
    ep = dash.svc.create_endpoint(key, receiver.url(path), description="Fulfillment")
    dash.login(page, store_id)
    c = card(page, ep["id"])
    recover = c.get_by_role("button", name="Recover missed events")
    window = c.get_by_label("Recover missed events from")
    expect(window.locator("option")).to_have_text(["Last hour", "Last 24 hours", "Last 7 days"])
    expect(recover).to_be_enabled()

    # Disabled: nothing is delivered, and recovering must wait until it is enabled again.
    c.get_by_role("button", name="Disable").click()
    expect(c.locator(".pill")).to_have_text("Disabled")
    expect(recover).to_be_disabled()
    expect(c.locator(".recover")).to_contain_text("Enable this endpoint first")
    missed = dash.svc.publish(store_id).json()["id"]
    # (a form sent anyway, e.g. from a page opened before, is refused with the same advice)
    token = page.locator("input[name=csrf_token]").first.input_value()
    r = page.request.post(
        f"{dash.svc.base_url}/dashboard/webhooks/endpoints/{ep['id']}/recover",
        form={"csrf_token": token, "window": "hour"},
        max_redirects=0,
    )
    assert r.status == 422
    assert "enable it first" in r.text()

    c.get_by_role("button", name="Enable").click()
    expect(c.locator(".pill")).to_have_text("Active")
    assert receiver.received(path) == []
    window.select_option(label="Last hour")
    recover.click()

    result = page.locator(f"#recover-result-{ep['id']}")
    expect(result).to_have_text("1 missed event queued again. It appears under Recent Deliveries.")
    (got,) = receiver.wait_for(1, path)
    assert got.headers["webhook-id"] == missed
    deliveries = c.locator("[data-live='deliveries']")
    expect(deliveries).to_be_visible()  # opened for you
    expect(deliveries.locator(".attempt .badge")).to_have_text(["Success 200"])
    page.evaluate("window.scrollTo(0, 0)")
    dash.shoot(page, "recover-missed-events", full_page=False)

    # Delivered now: a second recovery finds nothing.
    c.get_by_role("button", name="Recover missed events").click()
    expect(result).to_contain_text("Nothing to recover")
    assert len(receiver.received(path)) == 1


def test_free_plan_store_sees_the_upgrade_card(dash: Dashboard, page: Page) -> None:
    store_id, _ = dash.svc.create_store(plan="free", name="Corner Crafts")
    dash.login(page, store_id)
    upgrade = page.locator(".upgrade")
    expect(upgrade).to_contain_text("Business Plan Feature")
    expect(upgrade).to_contain_text(
        "Custom webhooks are available on the Business plan ($199/month)."
    )
    expect(page.locator("main")).to_contain_text("What are Webhooks?")
    expect(page.locator("main")).to_contain_text("Inventory Management")
    expect(page.locator(".events-table")).to_contain_text("order.created")
    expect(page.get_by_text("Add Endpoint")).to_have_count(0)
    expect(page.locator("form[action*='/endpoints']")).to_have_count(0)
    dash.shoot(page, "upgrade")


CONTRAST_JS = """
async () => {
  await Promise.all(document.getAnimations().map((a) => a.finished));  // transitions settled
  const rgb = (c) => {
    const m = c.match(/[\\d.]+/g).map(Number);
    return m.length > 3 ? m : [...m, 1];
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c[3] > 0.5) return c;
    }
    return [255, 255, 255, 1];
  };
  const out = [];
  for (const el of document.querySelectorAll("main *, header *")) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!text.length || box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const a = lum(rgb(style.color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    out.push({ text: text[0].textContent.trim().slice(0, 40), ratio, need: large ? 3 : 4.5 });
  }
  return out;
}
"""


def test_text_contrast_meets_wcag_aa(dash: Dashboard, page: Page, receiver: Receiver) -> None:
    """Every visible piece of text on the page in its main states (an endpoint with a success
    and a failure, badges, tags, help text, the add form) has WCAG AA contrast."""
    store_id, key = dash.svc.create_store()
    ok_path, bad_path = unique_path(), unique_path()
    receiver.script(bad_path, statuses=[500])
    ok = dash.svc.create_endpoint(key, receiver.url(ok_path), description="Inventory sync")
    bad = dash.svc.create_endpoint(key, receiver.url(bad_path), description="Zapier")
    dash.svc.publish(store_id)
    dash.svc.wait_attempts(key, bad["id"], 3)
    dash.login(page, store_id)
    for ep in (ok, bad):
        open_deliveries(page, ep["id"])
        card(page, ep["id"]).locator(".attempt summary").first.click()
    page.locator("#add-endpoint summary").click()
    expect(page.locator("#add-endpoint form")).to_be_visible()
    page.mouse.move(0, 0)  # no hover state
    checked = page.evaluate(CONTRAST_JS)
    assert len(checked) > 40, checked  # the walk really found the page's text
    low = [c for c in checked if c["ratio"] < c["need"]]
    assert not low, low


def test_phone_width(dash: Dashboard, phone: Page, receiver: Receiver) -> None:
    page = phone
    store_id, key = dash.svc.create_store(name="Jane's Ceramics")
    path = unique_path()
    ep = dash.svc.create_endpoint(key, receiver.url(path), description="Inventory sync")
    dash.svc.publish(store_id)
    dash.svc.wait_attempts(key, ep["id"], 1)
    dash.login(page, store_id)
    open_deliveries(page, ep["id"])
    expect(card(page, ep["id"]).locator(".attempt")).to_have_count(1)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    dash.shoot(page, "phone")


def test_works_without_javascript(dash: Dashboard, browser: Browser, receiver: Receiver) -> None:
    """Plain forms and links: reveal, disable and delete (confirmed on a page) need no script."""
    store_id, key = dash.svc.create_store()
    ep = dash.svc.create_endpoint(key, receiver.url(unique_path()))
    secret = dash.svc.request("GET", f"/v1/endpoints/{ep['id']}/secret", key).json()["secret"]
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        dash.login(page, store_id)
        c = card(page, ep["id"])
        c.get_by_role("link", name="Reveal secret").click()
        expect(c.get_by_label("Signing secret")).to_have_value(secret)

        c.get_by_role("button", name="Disable").click()
        expect(c.locator(".pill")).to_have_text("Disabled")

        c.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("heading", name="Delete this endpoint?")).to_be_visible()
        expect(page.locator("main")).to_contain_text("This action cannot be undone.")
        assert dash.svc.endpoint(key, ep["id"])["id"] == ep["id"]  # not yet
        page.get_by_role("button", name="Delete endpoint").click()
        expect(page.locator("#notice")).to_contain_text("Endpoint deleted")
        assert dash.svc.request("GET", f"/v1/endpoints/{ep['id']}", key).status_code == 404
    finally:
        ctx.close()


# -- hostile strings and forged forms --------------------------------------------------------

XSS_DESCRIPTION = "<img src=x onerror=alert(1)>"
XSS_PATH = "/x-\"'><svg/onload=alert(2)><b>bold</b>?q=<script>alert(3)</script>&r='\""


def test_receiver_controlled_strings_render_as_text(
    dash: Dashboard, page: Page, receiver: Receiver
) -> None:
    """A description and a URL full of markup are shown as the characters typed: no element
    is made from them, on the page or in its live updates (a dialog would fail the test)."""
    store_id, key = dash.svc.create_store()
    url = receiver.url(XSS_PATH)
    ep = dash.svc.create_endpoint(key, url, description=XSS_DESCRIPTION)
    assert ep["url"] == url  # stored as typed
    dash.login(page, store_id)
    c = card(page, ep["id"])
    expect(c).to_contain_text(XSS_DESCRIPTION)
    expect(c).to_contain_text(url)

    def no_injected_elements() -> None:
        assert page.locator("img[src='x'], [onerror], [onload]").count() == 0
        assert page.locator("svg[onload], b:text-is('bold')").count() == 0
        assert page.locator("script:not([src])").count() == 0  # only the dashboard's own file
        assert page.evaluate("window.__xss === undefined")

    no_injected_elements()
    # the live parts are re-rendered and swapped in by the page's script: still text
    assert dash.svc.publish(store_id).status_code == 202
    expect(c.locator(".last-triggered")).to_have_text("just now")
    expect(c).to_contain_text(XSS_DESCRIPTION)
    no_injected_elements()


DASHBOARD_POSTS = [
    r for r in api_routes() if r.path.startswith("/dashboard/") and r.method == "POST"
]
# The rest of each form (everything but the token), so only the token can be the reason.
FORM_FIELDS: dict[str, dict[str, str]] = {
    "/dashboard/webhooks/endpoints": {
        "url": "https://forged.example.com/hook",
        "events": "order.created",
        "format": "standard",
    },
    "/dashboard/webhooks/endpoints/{endpoint_id}/delete": {"confirmed": "yes"},
    "/dashboard/webhooks/endpoints/{endpoint_id}/test": {"type": "order.created"},
    "/dashboard/webhooks/endpoints/{endpoint_id}/recover": {"window": "day"},
}


def test_every_dashboard_post_needs_the_csrf_token(
    dash: Dashboard, page: Page, context: BrowserContext, receiver: Receiver
) -> None:
    """Every state-changing route of the dashboard (read from the app's routes), posted with the
    session cookie but without this session's token, is refused with 403 and changes nothing."""
    assert len(DASHBOARD_POSTS) >= 9, [r.path for r in DASHBOARD_POSTS]
    assert "/dashboard/logout" in {r.path for r in DASHBOARD_POSTS}
    svc = dash.svc
    store_id, key = svc.create_store()
    path = unique_path()
    ep = svc.create_endpoint(key, receiver.url(path))
    delivered = svc.publish(store_id).json()["id"]
    receiver.wait_for(1, path)
    # An event missed while disabled: "recover" would queue it, "test"/"resend" would send.
    svc.request("PATCH", f"/v1/endpoints/{ep['id']}", key, json={"enabled": False})
    assert svc.publish(store_id).status_code == 202
    svc.request("PATCH", f"/v1/endpoints/{ep['id']}", key, json={"enabled": True})
    svc.wait_attempts(key, ep["id"], 1)

    def state() -> tuple[object, ...]:
        endpoints = [
            {k: v for k, v in e.items() if k != "last_triggered_at"}  # (the barrier moves it)
            for e in svc.request("GET", "/v1/endpoints", key).json()["data"]
        ]
        secret = svc.request("GET", f"/v1/endpoints/{ep['id']}/secret", key).json()["secret"]
        return (endpoints, secret, svc.attempts(key, ep["id"]))

    before = state()
    dash.login(page, store_id)
    ids = {"endpoint_id": ep["id"], "event_id": delivered}
    for route in DASHBOARD_POSTS:
        target = svc.base_url + route.path.format(**ids)
        fields = FORM_FIELDS.get(route.path, {})
        for token in (None, "0" * 64):
            form = dict(fields) if token is None else {**fields, "csrf_token": token}
            r = context.request.post(target, form=form, max_redirects=0)
            assert r.status == 403, f"{route.path} with token={token!r}: {r.status}"
            assert "This form could not be accepted" in r.text(), route.path
    # Still signed in (logout was refused too), and nothing changed or was sent.
    r = context.request.get(svc.base_url + "/dashboard/webhooks", max_redirects=0)
    assert r.status == 200
    barrier = svc.publish(store_id).json()["id"]
    got = receiver.wait_for(2, path)
    svc.wait_attempts(key, ep["id"], 2)
    assert [g.headers["webhook-id"] for g in got] == [delivered, barrier]
    endpoints, secret, attempts = state()
    assert (endpoints, secret) == before[:2]
    assert attempts[1:] == before[2]
