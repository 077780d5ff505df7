"""The app served on a real port over the test database, driven by Debian's Chromium.

One browser per session, a fresh context (cookies, storage) per user and test. The
server runs in a thread on the SQLite file of the ``desk`` fixture; the browser half
does not run on PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from werkzeug.serving import make_server

from web import create_app

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make chromium'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def live_server(desk, database_url: str) -> Iterator[str]:
    """The whole app (pages and API) on 127.0.0.1 and a free port, sharing the test engine."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser tests run on the SQLite test database only")
    app = create_app({"TESTING": True, "SECRET_KEY": "browser-tests", "WTF_CSRF_ENABLED": True,
                      "SESSION_COOKIE_SECURE": False}, desk=desk)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="guichet-test-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def new_context(browser: Browser, live_server: str) -> Iterator[Callable[..., BrowserContext]]:
    """Fresh browser contexts for this test, all closed at its end."""
    contexts: list[BrowserContext] = []

    def make(**options) -> BrowserContext:
        context = browser.new_context(base_url=live_server,
                                      viewport={"width": 1280, "height": 860}, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context) -> Page:
    """An anonymous page in a fresh context."""
    return new_context().new_page()


@pytest.fixture
def sign_in(new_context) -> Callable[..., Page]:
    """``sign_in("alice")``: a page in a context of its own, signed in through the form."""

    def login(username: str, javascript: bool = True) -> Page:
        page = new_context(java_script_enabled=javascript).new_page()
        page.goto("/login")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("[data-testid=user-name]")).to_be_visible()
        return page

    return login


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
