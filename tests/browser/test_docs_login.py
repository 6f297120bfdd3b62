"""The interactive docs in a real browser, against the real service, with no internet.

Headless Chromium (Debian's, driven by Playwright) may reach only the app's own host:port:
every other request is aborted and recorded, and the tests assert there were none, so every
script, stylesheet, font and icon of /docs and /redoc really comes from the app. On /docs, the
Authorize button logs in through the OAuth2 password flow (email as username) and the token it
gets authorizes "Try it out" on GET /api/v1/todos.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from app.migrations import ROOT
from tests.conftest import PASSWORD, TempPostgres, postgres_admin_url
from tests.runtime.server import Server, app_env, gunicorn

pytestmark = pytest.mark.postgres  # the server fixture makes its own database

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
TODOS_PATH = "/api/v1/todos"
TOKEN_PATH = "/api/v1/auth/token"
OUTPUT_DIR = ROOT / "test-output"  # gitignored: screenshots for a human to look at


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (install it: apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the browser tests to run. {reason}")
        pytest.skip(f"SKIPPING BROWSER TESTS. {reason}")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("browser-server")
    database = TempPostgres.create(postgres_admin_url(), role="browser")
    try:
        with gunicorn(app_env(database.url, tmp_path), tmp_path, workers=2) as running:
            yield running
    finally:
        database.drop()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class OfflineContext:
    """A browser context that may reach only the app; what else it tried is in `blocked`."""

    context: BrowserContext
    page: Page
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture
def offline(browser: Browser, server: Server) -> Iterator[OfflineContext]:
    app_origin = urlsplit(server.base_url)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        state = OfflineContext(context, page)

        def only_the_app(route: Route) -> None:
            url = urlsplit(route.request.url)
            if (url.scheme, url.netloc) == (app_origin.scheme, app_origin.netloc):
                route.continue_()
            else:
                state.blocked.append(route.request.url)
                route.abort("blockedbyclient")

        context.route("**/*", only_the_app)
        page.on("pageerror", lambda error: state.page_errors.append(str(error)))
        yield state
    finally:
        context.close()


def register(server: Server) -> str:
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        response = client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return email


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=shot, full_page=True)
    OUTPUT_DIR.mkdir(exist_ok=True)
    copy = OUTPUT_DIR / name
    shutil.copyfile(shot, copy)
    print(f"\nscreenshot: {copy} (also {shot})")
    return copy


def test_swagger_authorize_logs_in_and_try_it_out_lists_todos(
    offline: OfflineContext, server: Server, tmp_path: Path
) -> None:
    email = register(server)
    page = offline.page
    try:
        page.goto(f"{server.base_url}/docs", wait_until="load")
        expect(page.locator(".swagger-ui .information-container .title")).to_contain_text(
            "todo-api", timeout=TIMEOUT_MS
        )

        # The top-level button; the dialog's own buttons have aria-labels of their own.
        page.locator(".auth-wrapper").get_by_role("button", name="Authorize").click()
        dialog = page.locator(".dialog-ux .modal-ux")
        expect(dialog).to_be_visible(timeout=TIMEOUT_MS)
        expect(dialog).to_contain_text("OAuth2PasswordBearer", timeout=TIMEOUT_MS)
        expect(dialog).to_contain_text("Flow: password", timeout=TIMEOUT_MS)
        dialog.get_by_label("username:").fill(email)
        dialog.get_by_label("password:").fill(PASSWORD)
        with page.expect_response(
            lambda r: urlsplit(r.url).path == TOKEN_PATH, timeout=TIMEOUT_MS
        ) as token_info:
            dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
        token = token_info.value
        assert token.status == 200, f"{TOKEN_PATH} answered {token.status}: {token.text()}"
        # Once authorized, the dialog offers Logout instead of Authorize.
        expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible(
            timeout=TIMEOUT_MS
        )
        dialog.get_by_role("button", name="Close", exact=True).click()
        expect(dialog).to_be_hidden(timeout=TIMEOUT_MS)
        expect(page.locator(".auth-wrapper button.authorize")).to_have_class(
            "btn authorize locked", timeout=TIMEOUT_MS
        )

        operation = page.locator(".opblock.opblock-get").filter(
            has=page.locator(f'.opblock-summary-path[data-path="{TODOS_PATH}"]')
        )
        expect(operation).to_have_count(1, timeout=TIMEOUT_MS)
        operation.locator("button.opblock-summary-control").click()
        operation.get_by_role("button", name="Try it out").click()
        with page.expect_response(
            lambda r: urlsplit(r.url).path == TODOS_PATH and r.request.method == "GET",
            timeout=TIMEOUT_MS,
        ) as todos_info:
            operation.get_by_role("button", name="Execute").click()
        todos = todos_info.value
        assert todos.status == 200, f"{TODOS_PATH} answered {todos.status}: {todos.text()}"
        authorization = todos.request.all_headers().get("authorization", "")
        assert authorization.startswith("Bearer "), f"Authorization header: {authorization!r}"
        assert len(authorization) > len("Bearer ")
        assert todos.json()["items"] == []

        status = operation.locator(".live-responses-table tr.response .response-col_status")
        expect(status).to_have_text("200", timeout=TIMEOUT_MS)
        operation.locator(".live-responses-table").scroll_into_view_if_needed()
        page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
    finally:
        save_screenshot(page, tmp_path, "docs-login.png")
        if offline.blocked:  # the likeliest cause when the steps above time out
            print(f"\nblocked requests outside the app: {offline.blocked}")

    assert offline.blocked == [], f"/docs tried to load from outside the app: {offline.blocked}"
    assert offline.page_errors == [], f"uncaught errors on /docs: {offline.page_errors}"


def test_redoc_renders_from_the_app_alone(offline: OfflineContext, server: Server) -> None:
    page = offline.page
    page.goto(f"{server.base_url}/redoc", wait_until="load")
    title = page.locator(".api-info h1")
    expect(title).to_contain_text("todo-api", timeout=TIMEOUT_MS)
    expect(page.locator(".api-content")).to_contain_text("List Todos", timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)

    assert offline.blocked == [], f"/redoc tried to load from outside the app: {offline.blocked}"
    assert offline.page_errors == [], f"uncaught errors on /redoc: {offline.page_errors}"
