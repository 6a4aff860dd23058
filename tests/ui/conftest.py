"""Browser tests of the web UI: a real ``ferry server`` over a store filled by the real
client, driven by Debian's Chromium through Playwright, one server and one browser per
module.

A test module fills the store with ``def ui_data(client: FerryClient) -> dict`` (what it
returns is ``ui_server.data``) and looks at pages with ``visit``, which fails the test on
a console error, saves a screenshot and runs axe-core on the page.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryml.config import Settings
from ferryml.tracking.client import FerryClient

# The team server's process and users, shared with tests/server.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from team_world import TeamServer, running_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def ui_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, make_store: Any
) -> Iterator[TeamServer]:
    """A ``ferry server`` over SQLite with a user per role (named after it) and what the
    module's ``ui_data(client)`` logged; its return value is ``ui_server.data``."""
    folder = tmp_path_factory.mktemp("ui")
    artifacts = (folder / "server-artifacts").as_uri()
    with make_store("sqlite", folder, request) as store_url:
        client = FerryClient(
            Settings(home=folder / "home", store_url=store_url, artifacts_url=artifacts)
        )
        fill = getattr(request.module, "ui_data", None)
        try:
            data = fill(client) if fill is not None else {}
        finally:
            client.close()
        for server in running_server(store_url, folder, artifacts=artifacts):
            server.data = data  # type: ignore[attr-defined]
            yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (no browser can be downloaded here)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def signed_in(browser: Any, ui_server: TeamServer) -> Iterator[Callable[[str], Any]]:
    """``signed_in(role)``: a page of a browser context signed in through the sign-in form
    as the user of that role (reader, writer, maintainer, admin), one per role."""
    contexts: dict[str, Any] = {}

    def page_as(role: str) -> Any:
        if role not in contexts:
            context = browser.new_context(
                base_url=ui_server.url, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            page.goto("/signin")
            page.fill("#user", role)
            page.fill("#token", ui_server.tokens[role])
            page.click("form.signin button[type=submit]")
            page.wait_for_url(re.compile(r".*/experiments"))
            contexts[role] = context
            page.close()
        return contexts[role].new_page()

    yield page_as
    for context in contexts.values():
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots of this run go: FERRY_UI_SCREENSHOTS, else under the run's
    base temporary folder."""
    named = os.environ.get("FERRY_UI_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.getbasetemp() / "ui-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def visit(screenshots: Path) -> Callable[..., Any]:
    """``visit(page, path, name, ready=SELECTOR, allow=(...))``: open ``path``, wait for
    ``ready``, save a screenshot as ``name``.png, check accessibility with axe-core, and
    fail on any console error or uncaught exception whose text matches none of ``allow``
    (e.g. the refused request a test provokes on purpose)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make install` (npm ci in ui/).")
    axe_source = AXE.read_text()

    def go(
        page: Any, path: str, name: str, ready: str = "main", allow: tuple[str, ...] = ()
    ) -> Any:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.goto(path)
        page.wait_for_selector(ready)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
        page.evaluate(axe_source)
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
            for v in result["violations"]
            if v["impact"] in SERIOUS
        ]
        assert bad == [], f"accessibility on {path}"
        unexpected = [e for e in errors if not any(a in e for a in allow)]
        assert unexpected == [], f"console errors on {path}"
        return page

    go.screenshots = screenshots  # type: ignore[attr-defined]
    return go
