"""The Workflows screen in a real browser (Playwright and Debian's Chromium, as in tests/test_web_browser.py):
start a run, follow its steps to the end with its artifact and metric, see a wrong parameter refused in
words, cancel a running run. Screenshots at 375 and 1440 px go to test-artifacts/web/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.harness import RunningHearth
from tests.web_helpers import PASSWORD, web_server

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHearth]:
    with web_server(
        tmp_path_factory.mktemp("web-workflows"),
        workflows_modules="tests.workflow_pipelines",
        workflows_poll_seconds=0.05,
        workflows_heartbeat_seconds=0.2,
    ) as (running, _):
        httpx.put(
            f"{running.url}/api/admin/users/admin/password",
            json={"password": PASSWORD},
            headers=running.headers(),
        ).raise_for_status()
        yield running


@pytest.fixture
def page(hearth: RunningHearth) -> Iterator[Page]:
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{hearth.url}/login")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/chat$"))
        yield page
        browser.close()
        assert not errors, f"script errors on the page: {errors}"


def test_start_follow_and_cancel_runs(page: Page, hearth: RunningHearth) -> None:
    page.goto(f"{hearth.url}/workflows")
    expect(page.locator("h1")).to_have_text("Workflows")
    expect(page.locator('nav a[aria-current="page"]')).to_have_text("Workflows")

    page.select_option("#pipeline", "demo")
    expect(page.locator("#pipeline-help")).to_contain_text("produce → consume")
    page.fill("#params", '{"n": 3}')
    page.fill("#experiment", "ui")
    page.click("#run-form button[type=submit]")
    expect(page.locator("#run-title .status")).to_have_text("succeeded")
    expect(page.locator('#step-rows tr[data-step="consume"] .status')).to_have_text("succeeded")
    expect(page.locator('#step-rows tr[data-step="consume"]')).to_contain_text('{"letters":24}')
    expect(page.locator("#run-metrics")).to_have_text("metrics: letters 24.00")
    expect(page.locator("#run-artifacts a")).to_have_text("produce.words")
    expect(page.locator("#cancel-run")).to_be_hidden()
    _shoot(page, "workflows")

    page.fill("#params", '{"n": "three"}')
    page.click("#run-form button[type=submit]")
    expect(page.locator("#toast")).to_contain_text("parameter 'n' must be int, not str 'three'")

    page.select_option("#pipeline", "slow")
    page.fill("#params", '{"seconds": 60}')
    page.click("#run-form button[type=submit]")
    expect(page.locator('#step-rows tr[data-step="nap"] .status')).to_have_text("running")
    page.click("#cancel-run")
    expect(page.locator("#run-title .status")).to_have_text("cancelled")
    expect(page.locator('#step-rows tr[data-step="nap"] .status')).to_have_text("cancelled")
    expect(page.locator("#run-rows tr").first).to_contain_text("slow v1")


def _shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (375, 1440):
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} scrolls sideways at {width} px"
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})
