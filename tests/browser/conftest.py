"""A real Chromium against the app and the vcita sandbox, both served over HTTP on loopback.

The app is reached at http://localhost:<port> and the sandbox at http://127.0.0.1:<port>:
two different sites, so vcita's redirect back to /callback is a real cross-site
navigation and the session cookie's SameSite setting matters as it does in production.

One Chromium for the whole run, a fresh browser context (cookies, tabs) for every test,
and fresh servers for every test. Each test's pages are photographed when it ends, into
test-artifacts/ (ignored by git).
"""

import os
import re
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from app import create_app
from sandbox import SandboxState, create_sandbox
from sandbox.testing import ServerThread

from ..conftest import close, sandbox_state_of, vcita_at
from ..servers import DeferredApp

CHROMIUM = Path("/usr/bin/chromium")
# Running as root needs --no-sandbox. The rest keep Chromium from calling home: these
# machines have no internet, and without them it retries its update and sync services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Block third-party cookies, as Chrome does for more and more people: inside vcita's
    # frame the app has only its partitioned (CHIPS) cookie.
    "--test-third-party-cookie-phaseout",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# `make screenshots` sets this to docs/screenshots: journey 1 then saves the README's pictures.
README_SCREENSHOTS = os.environ.get("README_SCREENSHOTS")
# The README's pictures show the addresses of `make run` when those ports are free.
README_PORTS = (5000, 5001) if README_SCREENSHOTS else (0, 0)
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000

# Chromium resolves every *.localhost name to loopback, with no DNS.
APP_MARKET_HOST = "vcita.localhost"
BRAND_DOMAIN = "myclients.localhost"
CLIENT_ID = "browser-test-client"
CLIENT_SECRET = "Zq9xW7vK3mN1pLtR8sY2uJ6h"  # no word of it appears on any page


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sandbox_settings(**settings): SANDBOX_* settings for this test's sandbox"
    )
    config.addinivalue_line(
        "markers", "app_settings(**settings): environment settings for this test's app"
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(item.fspath).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Debian's Chromium, headless, once for the whole run."""
    if not CHROMIUM.exists():
        message = (
            f"Chromium is not installed at {CHROMIUM}: install it with "
            "`sudo apt-get install chromium` (or `make install-chromium` as root)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " — CI=true, so browser tests may not skip")
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class Servers:
    """The vcita sandbox and the app, each on its own loopback port."""

    sandbox: Flask
    sandbox_server: ServerThread
    app: Flask
    app_server: ServerThread
    stack: ExitStack = field(repr=False)

    @property
    def vcita(self) -> SandboxState:
        """The sandbox's recorded requests and fault switches."""
        return sandbox_state_of(self.sandbox)

    @property
    def app_url(self) -> str:
        """The app's address: `localhost`, another site than the sandbox's 127.0.0.1."""
        return f"http://localhost:{self.app_server.port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def app_market_url(self) -> str:
        """The sandbox playing vcita's own UI, on a name of its own: another site again."""
        return f"http://{APP_MARKET_HOST}:{self.sandbox_port}"

    def __post_init__(self) -> None:
        self.sandbox_port = self.sandbox_server.port

    def stop_sandbox(self) -> None:
        """Take vcita down: its port then refuses connections."""
        self.sandbox_server.stop()

    def restart_sandbox(self) -> None:
        """Bring vcita back on the same port, remembering everything it knew."""
        self.sandbox_server = ServerThread(self.sandbox, port=self.sandbox_port).start()
        self.stack.callback(self.sandbox_server.stop)


def _serve(wsgi_app, preferred_port: int) -> ServerThread:
    """Serve on `preferred_port` if it is free, else on any free port."""
    if preferred_port:
        try:
            return ServerThread(wsgi_app, port=preferred_port).start()
        except OSError:
            pass
    return ServerThread(wsgi_app).start()


@pytest.fixture
def start_servers(tmp_path) -> Callable[..., Servers]:
    """Serve a sandbox and an app pointed at it; stopped when the test ends."""
    with ExitStack() as stack:

        def start_servers(
            sandbox_settings: dict | None = None, app_settings: dict | None = None
        ) -> Servers:
            app_wsgi = DeferredApp()
            app_server = _serve(app_wsgi, README_PORTS[0])
            stack.callback(app_server.stop)
            app_url = f"http://localhost:{app_server.port}"
            sandbox = create_sandbox(
                {
                    "SANDBOX_CLIENT_ID": CLIENT_ID,
                    "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
                    "SANDBOX_REDIRECT_URIS": f"{app_url}/callback",
                    "SANDBOX_CONTROL": "true",
                    "SANDBOX_APP_URL": f"{app_url}/",
                    "SANDBOX_BRAND_DOMAIN": BRAND_DOMAIN,
                    **(sandbox_settings or {}),
                }
            )
            sandbox_server = _serve(sandbox, README_PORTS[1])
            stack.callback(sandbox_server.stop)
            app = create_app(
                {
                    "VCITA_SANDBOX": "true",
                    "VCITA_CLIENT_ID": CLIENT_ID,
                    "VCITA_CLIENT_SECRET": CLIENT_SECRET,
                    "VCITA_REDIRECT_URI": f"{app_url}/callback",
                    **vcita_at(sandbox_server.url),
                    "SECRET_KEY": "browser-test-secret-key-0123456789abcdef",
                    "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'connect.db'}",
                    "VCITA_BRAND_HOSTS": f"*.{BRAND_DOMAIN}",
                    "VCITA_BRAND_AUTHORIZE_URL": (
                        f"http://{{brand_host}}:{sandbox_server.port}/app/oauth/authorize"
                    ),
                    "VCITA_FRAME_ANCESTORS": f"http://{APP_MARKET_HOST}:{sandbox_server.port}",
                    # The sandbox delivers the uninstall webhook here, over loopback.
                    "PUBLIC_BASE_URL": app_url,
                    **(app_settings or {}),
                }
            )
            stack.callback(close, app)
            app_wsgi.app = app.wsgi_app
            return Servers(sandbox, sandbox_server, app, app_server, stack)

        yield start_servers


@pytest.fixture
def servers(request, start_servers) -> Servers:
    """The sandbox and app for this test (see the sandbox_settings and app_settings markers)."""
    sandbox_settings = request.node.get_closest_marker("sandbox_settings")
    app_settings = request.node.get_closest_marker("app_settings")
    return start_servers(
        sandbox_settings=sandbox_settings.kwargs if sandbox_settings else None,
        app_settings=app_settings.kwargs if app_settings else None,
    )


@pytest.fixture
def context(request, browser) -> BrowserContext:
    """A fresh browser profile; every page it opened is photographed when the test ends."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    for number, page in enumerate(context.pages, start=1):
        suffix = f"-tab{number}" if len(context.pages) > 1 else ""
        # A popup that closed itself, perhaps while being photographed, has no picture.
        with suppress(PlaywrightError):
            page.screenshot(path=ARTIFACTS / f"{name}{suffix}.png")
    context.close()


@pytest.fixture
def page(context) -> Page:
    """One tab of this test's browser."""
    return context.new_page()


@pytest.fixture
def readme_screenshot() -> Callable[[Page, str], None]:
    """Save a picture for the README when `make screenshots` asks for them."""

    def readme_screenshot(page: Page, name: str) -> None:
        if README_SCREENSHOTS:
            folder = ROOT / README_SCREENSHOTS
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=folder / f"{name}.png")

    return readme_screenshot
