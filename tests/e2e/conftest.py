"""Browser fixtures: one headless Chromium per session (Debian's, driven by Playwright), a fresh
context per test, and helpers to sign in to the dashboard of a running service."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Response,
    expect,
    sync_playwright,
)

from tests.support.api_helpers import module_receiver, module_service
from tests.support.pgserver import PgServer
from tests.support.receiver import Receiver
from tests.support.service import Service

CHROMIUM = os.environ.get("PROMETORA_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Set to a folder (e.g. docs/screenshots) to save screenshots of the main states.
SCREENSHOTS = os.environ.get("PROMETORA_SCREENSHOTS_DIR")
WEBHOOKS = re.compile(r"/dashboard/webhooks(\?.*)?(#.*)?$")

expect.set_options(timeout=15_000)


# One running `prometora-webhooks serve` per test module and database (tests keep apart by
# creating their own stores), auto-disabling after 3 failures so that state is quick to reach.
dash_service = module_service(disable_after="3")
shared_receiver = module_receiver()


@pytest.fixture(scope="package")
def browser(pg_server: PgServer) -> Iterator[Browser]:
    """One Chromium for all the end-to-end tests.

    While the sync Playwright API is active, its event loop counts as running in this thread,
    so nothing here may call ``asyncio.run`` meanwhile: the PostgreSQL template (migrated with
    asyncio) is made first, and the browser is closed when this package's tests are done.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/system-deps.sh` (installs chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def watched_page(ctx: BrowserContext) -> tuple[Page, list[str]]:
    """A tab, and the script errors, CSP violations and native dialogs it meets."""
    p = ctx.new_page()
    problems: list[str] = []
    p.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(msg: ConsoleMessage) -> None:
        # A refused page (401, 410, …) logs "Failed to load resource": that one is expected.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            problems.append(f"console error: {msg.text}")

    def on_dialog(dialog: Dialog) -> None:
        problems.append(f"unexpected native dialog: {dialog.message}")
        dialog.dismiss()

    p.on("console", on_console)
    p.on("dialog", on_dialog)
    return p, problems


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A desktop tab that fails the test on any script error or CSP violation."""
    p, problems = watched_page(context)
    yield p
    assert not problems, problems


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A phone-sized tab (390×844, touch), watched like ``page``."""
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-US",
    )
    ctx.set_default_timeout(15_000)
    p, problems = watched_page(ctx)
    yield p
    ctx.close()
    assert not problems, problems


def visit(page: Page, url: str) -> Response:
    response = page.goto(url)
    assert response is not None, url
    return response


@dataclass
class Dashboard:
    """Sign-in links and the database-side tweaks the tests need."""

    svc: Service

    def link(self, store_id: str) -> str:
        r = self.svc.admin("POST", f"/v1/stores/{store_id}/dashboard-links")
        assert r.status_code == 201, r.text
        return str(r.json()["url"])

    def login(self, page: Page, store_id: str) -> None:
        page.goto(self.link(store_id))
        expect(page).to_have_url(WEBHOOKS)
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()

    def expire(self, link: str) -> None:
        """Move a link's expiry into the past, as 15 minutes passing would."""
        token = parse_qs(urlsplit(link).query)["token"][0]
        digest = hashlib.sha256(token.encode()).hexdigest()
        url = self.svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"]

        async def update() -> None:
            from sqlalchemy import update as sql_update

            from prometora_webhooks.storage.database import Database
            from prometora_webhooks.storage.tables import dashboard_tokens

            db = Database(url)
            try:
                async with db.write() as conn:
                    await conn.execute(
                        sql_update(dashboard_tokens)
                        .where(dashboard_tokens.c.token_hash == digest)
                        .values(expires_at=dashboard_tokens.c.created_at - 1)
                    )
            finally:
                await db.dispose()

        # Its own thread and event loop: the sync Playwright API owns this thread's loop.
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(update())
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        t.join(30)
        if errors:
            raise errors[0]

    def shoot(self, page: Page, name: str, *, full_page: bool = True) -> None:
        """Save a screenshot of the current state (once, from the SQLite run) when asked to."""
        if not SCREENSHOTS or not self.svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"].startswith(
            "sqlite"
        ):
            return
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(folder / f"{name}.png"), full_page=full_page, animations="disabled"
        )


@pytest.fixture
def dash(dash_service: Service) -> Dashboard:
    return Dashboard(dash_service)


@pytest.fixture
def receiver(shared_receiver: Receiver) -> Receiver:
    return shared_receiver
