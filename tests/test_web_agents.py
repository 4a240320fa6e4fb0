"""The Agents screen in a real browser (Playwright driving Debian's Chromium, as tests/test_web_browser.py):
a router run streams its steps and answer, a crew run records its tool calls, past runs reopen, and a failed
run resumes from the page. The chat and judge models are a scripted fake upstream."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.agents_helpers import Script, agents_config, ingest
from tests.fake_openai import FakeOpenAI
from tests.harness import RunningHearth, run_hearth
from tests.helpers import wait_indexed
from tests.test_web_browser import CHROMIUM, shoot
from tests.web_helpers import PASSWORD

expect.set_options(timeout=20_000)
ANSWER = "The boiler pressure should read **1.5 bar** [1]."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHearth]:
    upstream = FakeOpenAI().start()
    script = Script()
    upstream.behaviour.script = script
    with run_hearth(tmp_path_factory.mktemp("web-agents"), agents_config(upstream.url)) as hearth:
        hearth.script = script  # type: ignore[attr-defined]
        httpx.put(
            f"{hearth.url}/api/admin/users/admin/password",
            json={"password": PASSWORD},
            headers=hearth.headers(),
        ).raise_for_status()
        ingest(hearth, "home", "Boiler manual", "The boiler pressure should read 1.5 bar.")
        wait_indexed(hearth, "home", 1)
        yield hearth
    upstream.stop()


@pytest.fixture(scope="module")
def browser(server: RunningHearth) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: RunningHearth) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/chat$"))
    page.get_by_role("link", name="Agents").click()
    page.wait_for_url(re.compile(r"/agents$"))
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def test_router_run_streams_steps_and_a_cited_answer(page: Page, server: RunningHearth) -> None:
    server.script.reset(classify="factual", answer=ANSWER, judge='{"score": 91}')  # type: ignore[attr-defined]
    expect(page.locator("#agent-collection option[value=home]")).to_have_count(1)
    page.select_option("#agent-collection", "home")
    page.fill("#agent-query", "What should the boiler pressure read?")
    page.keyboard.press("Enter")
    expect(page.locator("#answer-meta")).to_have_text("factual → rag; judged 91 by model")
    expect(page.locator("#answer-text strong")).to_have_text("1.5 bar")  # Markdown, sanitized
    rows = page.locator("#step-rows tr th")
    expect(rows).to_have_text(["classify", "route", "retrieve", "generate", "judge", "finish"])
    expect(page.locator("#run-list li")).to_have_count(1)
    shoot(page, "agents")


def test_crew_run_and_reopening_runs(page: Page, server: RunningHearth) -> None:
    server.script.reset(  # type: ignore[attr-defined]
        plan='[{"tool": "calculator", "arguments": {"expression": "2 ** 10"}}]',
        write="It is 1024.",
        review='{"verdict": "approve", "score": 90}',
    )
    page.select_option("#agent-kind", "crew")
    page.fill("#agent-query", "What is 2 ** 10?")
    page.click("#agent-run")
    expect(page.locator("#answer-meta")).to_have_text("approved after 0 revision(s)")
    expect(page.locator("#step-rows tr").first).to_contain_text("calculator ok")
    page.select_option("#run-kind-filter", "router")
    page.locator("#run-list a").first.click()
    expect(page.locator("#run-title")).to_have_text("What should the boiler pressure read?")
    expect(page.locator("#step-rows tr")).to_have_count(6)


def test_a_failed_run_resumes_from_the_page(page: Page, server: RunningHearth) -> None:
    server.script.reset(classify="factual", answer={"status": 500}, judge='{"score": 80}')  # type: ignore[attr-defined]
    page.fill("#agent-query", "Boiler pressure?")
    page.click("#agent-run")
    expect(page.locator("#run-status")).to_contain_text("failed")
    expect(page.locator("#resume")).to_be_visible()
    server.script.reset(classify="factual", answer=ANSWER, judge='{"score": 80}')  # type: ignore[attr-defined]
    page.click("#resume")
    expect(page.locator("#answer-meta")).to_contain_text("judged 80 by model")
    expect(page.locator("#run-status")).to_contain_text("completed")
