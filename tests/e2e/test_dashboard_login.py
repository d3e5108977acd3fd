"""Signing in to the dashboard: one-time links, the session cookie, CSRF, one store per session."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import WEBHOOKS, Dashboard, visit
from tests.support.api_helpers import unique_path
from tests.support.receiver import Receiver


def test_login_by_link_starts_a_session(
    dash: Dashboard, page: Page, context: BrowserContext
) -> None:
    store_id, _ = dash.svc.create_store(name="Jane's Ceramics")
    response = visit(page, dash.link(store_id))
    assert response.ok
    expect(page).to_have_url(WEBHOOKS)
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    expect(page.locator(".topbar")).to_contain_text("Jane's Ceramics")
    expect(page.locator(".breadcrumb")).to_contain_text("Store Settings")

    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe" not in csp
    assert response.headers["x-frame-options"] == "DENY"

    cookies = [c for c in context.cookies() if c["name"] == "prometora_dashboard"]
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] in ("Lax", "Strict")
    assert cookie["path"] == "/dashboard"
    assert cookie["secure"] is False  # PUBLIC_URL is http:// here; https:// makes it Secure
    assert 11 * 3600 < cookie["expires"] - time.time() <= 12 * 3600 + 60
    assert page.evaluate("document.cookie") == ""  # not readable by scripts

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    page.goto(dash.svc.base_url + "/dashboard/webhooks")
    expect(page.get_by_role("heading", name="Your session has ended")).to_be_visible()


def test_reused_link_is_refused(dash: Dashboard, page: Page, context: BrowserContext) -> None:
    store_id, _ = dash.svc.create_store()
    link = dash.link(store_id)
    page.goto(link)
    expect(page).to_have_url(WEBHOOKS)

    other = context.browser.new_context()  # type: ignore[union-attr]
    try:
        tab = other.new_page()
        response = visit(tab, link)
        assert response.status == 410
        expect(
            tab.get_by_role("heading", name="This login link has already been used")
        ).to_be_visible()
        expect(tab.locator("main")).to_contain_text("works once, and only for 15 minutes")
        assert not [c for c in other.cookies() if c["name"] == "prometora_dashboard"]
        dash.shoot(tab, "login-link-refused", full_page=False)
        tab.goto(dash.svc.base_url + "/dashboard/webhooks")
        expect(tab.get_by_role("heading", name="Your session has ended")).to_be_visible()
    finally:
        other.close()

    # The browser that used it is still signed in, and is told so.
    response = visit(page, link)
    assert response.status == 410
    page.get_by_role("link", name="Go to Webhooks").click()
    expect(page).to_have_url(WEBHOOKS)


def test_expired_or_unknown_link_is_refused(dash: Dashboard, page: Page) -> None:
    store_id, _ = dash.svc.create_store()
    link = dash.link(store_id)
    dash.expire(link)
    response = visit(page, link)
    assert response.status == 410
    expect(page.get_by_role("heading", name="This login link has expired")).to_be_visible()

    response = visit(page, dash.svc.base_url + "/dashboard/login?token=not-a-real-token")
    assert response.status == 400
    expect(page.get_by_role("heading", name="This login link is not valid")).to_be_visible()


def _csrf(page: Page) -> str:
    return str(page.locator("input[name=csrf_token]").first.input_value())


def _post(page: Page, url: str, form: dict[str, Any]) -> Any:
    return page.request.post(url, form=form, max_redirects=0)


def test_form_without_csrf_token_is_refused(dash: Dashboard, page: Page, receiver_url: str) -> None:
    store_id, key = dash.svc.create_store()
    ep = dash.svc.create_endpoint(key, receiver_url)
    dash.login(page, store_id)
    base = f"{dash.svc.base_url}/dashboard/webhooks/endpoints/{ep['id']}"

    for form in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}):
        r = _post(page, base + "/disable", form)
        assert r.status == 403, (form, r.status)
        assert "security token" in r.text()
        assert "text/html" in r.headers["content-type"]
    r = _post(page, base + "/delete", {"confirmed": "yes"})
    assert r.status == 403
    r = _post(page, f"{dash.svc.base_url}/dashboard/webhooks/endpoints", {"url": receiver_url})
    assert r.status == 403
    assert dash.svc.endpoint(key, ep["id"])["enabled"] is True

    # The page's own token works (and is what the forms carry).
    r = _post(page, base + "/disable", {"csrf_token": _csrf(page)})
    assert r.status == 303
    assert dash.svc.endpoint(key, ep["id"])["enabled"] is False


def test_session_sees_only_its_store(dash: Dashboard, page: Page, receiver_url: str) -> None:
    mine, _ = dash.svc.create_store(name="Mine")
    theirs, their_key = dash.svc.create_store(name="Theirs")
    their_ep = dash.svc.create_endpoint(their_key, receiver_url)
    dash.login(page, mine)
    expect(page.locator("main")).not_to_contain_text(their_ep["url"])
    token = _csrf(page)
    base = f"{dash.svc.base_url}/dashboard/webhooks/endpoints/{their_ep['id']}"
    for action in ("disable", "delete", "rotate-secret", "test", "recover"):
        r = _post(
            page,
            f"{base}/{action}",
            {"csrf_token": token, "confirmed": "yes", "type": "order.created", "window": "day"},
        )
        assert r.status == 404, (action, r.status)
    assert page.request.get(base + "/secret").status == 404
    assert (
        page.request.get(f"{dash.svc.base_url}/dashboard/webhooks?reveal={their_ep['id']}").status
        == 404
    )
    after = dash.svc.endpoint(their_key, their_ep["id"])
    assert after["enabled"] is True
    assert theirs != mine


@pytest.fixture
def receiver_url(receiver: Receiver) -> str:
    return receiver.url(unique_path())
