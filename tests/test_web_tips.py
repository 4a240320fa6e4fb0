"""The Tips screen in a real browser (the pattern of tests/test_web_browser.py): grant a consent, connect a
Markdown task file, sync, get a tip naming its agents, snooze it, and see an agent turn ineligible when its
consent is revoked. The tip-generator alias is a fake upstream so the page's words are known."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.harness import RunningHearth, run_hearth
from tests.test_web_browser import CHROMIUM, _signed_in, shoot
from tests.web_helpers import PASSWORD, web_config

TIP = "Spend ten minutes on the invoice before lunch."


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHearth]:
    from tests.fake_openai import FakeOpenAI

    upstream = FakeOpenAI().start()
    upstream.behaviour.reply = TIP
    config = web_config(upstream)
    config["aliases"]["tip-generator"] = {
        "kind": "chat",
        "deployments": [{"backend": "fake-up", "model": "m0"}],
    }
    try:
        with run_hearth(tmp_path_factory.mktemp("web-tips"), config, tips_tick_seconds=0) as running:
            httpx.put(
                f"{running.url}/api/admin/users/admin/password",
                json={"password": PASSWORD},
                headers=running.headers(),
            ).raise_for_status()
            (running.settings.data_dir / "tips").mkdir(exist_ok=True)
            (running.settings.data_dir / "tips" / "tasks.md").write_text(
                "# Work\n- [ ] Send the invoice due:2020-01-01\n"
            )
            yield running
    finally:
        upstream.stop()


@pytest.fixture
def page(hearth: RunningHearth) -> Iterator[Page]:
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = _signed_in(browser, hearth)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
        assert not errors, f"script errors on the page: {errors}"


def test_tips_screen(page: Page, hearth: RunningHearth) -> None:
    page.goto(hearth.url + "/tips")
    expect(page.locator("h1")).to_have_text("Tips")
    page.check("#consent-tasks\\.read")
    expect(page.locator("#agents")).to_contain_text("Open tasks past their due date")
    page.select_option("#connect-kind", "markdown")
    page.fill("#connect-value", "tasks.md")
    page.click("#connect-form button[type=submit]")
    expect(page.locator("#connectors")).to_contain_text("markdown")
    page.click("#sync")
    expect(page.locator("#connectors")).to_contain_text("task.open 1")

    page.click("#next")
    expect(page.locator("#tip-text")).to_have_text(TIP)
    expect(page.locator("#tip-meta")).to_contain_text("overdue-tasks")
    shoot(page, "tips")
    page.click("#snooze")
    expect(page.locator("#toast")).to_contain_text("snooze")
    expect(page.locator("#done")).to_be_disabled()

    page.uncheck("#consent-tasks\\.read")
    expect(page.locator("#agents")).to_contain_text("no: needs consent tasks.read")
