"""The web UI's voice, planner, bench and admin screens in a real browser (Playwright driving Debian's
Chromium) against one real Hearth with the embedded models. The microphone is Chromium's fake capture device
playing a WAV of a spoken question (made by piper, as in the voice tests); the `scripted` alias on a fake
upstream gives the replies a test must control. Screenshots at 375 and 1440 px go to test-artifacts/web/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

from hearth.gateway.audio import pcm_to_wav
from tests.fake_openai import FakeOpenAI
from tests.harness import RunningHearth
from tests.helpers import wait_until
from tests.test_web_browser import CHROMIUM, shoot
from tests.voice_helpers import PHRASES, pcm_of, words
from tests.web_helpers import PASSWORD, web_server

QUESTION = PHRASES[1]  # "What is the capital of France?"
LEAD, TAIL = 0.5, 1.5  # seconds of silence around the question in the microphone's WAV
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHearth, FakeOpenAI]]:
    with web_server(
        tmp_path_factory.mktemp("web-tools-ui"),
        embedded_chat=True,
        voice_warmup=True,
        voice_max_reply_tokens=24,
        voice_temperature=0.0,
        chat_title_model="scripted",
    ) as running:
        hearth, _ = running
        httpx.put(
            f"{hearth.url}/api/admin/users/admin/password",
            json={"password": PASSWORD},
            headers=hearth.headers(),
        ).raise_for_status()
        yield running


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The fake microphone's input: the spoken question between two silences, and its length in seconds."""
    pcm, rate = pcm_of(QUESTION)
    padded = bytes(int(LEAD * rate) * 2) + pcm + bytes(int(TAIL * rate) * 2)
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    path.write_bytes(pcm_to_wav(padded, rate))
    return path, len(padded) / 2 / rate


@pytest.fixture(scope="module")
def browser(server: tuple[RunningHearth, FakeOpenAI], microphone: tuple[Path, float]) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--use-fake-device-for-media-stream",  # a fake microphone…
                "--use-fake-ui-for-media-stream",  # …allowed without the permission prompt…
                f"--use-file-for-fake-audio-capture={microphone[0]}%noloop",  # …that says the WAV once
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: tuple[RunningHearth, FakeOpenAI]) -> Iterator[Page]:
    hearth, _ = server
    context = browser.new_context(viewport={"width": 1440, "height": 900}, permissions=["microphone"])
    signed_in = context.new_page()
    errors: list[str] = []
    signed_in.on("pageerror", lambda exc: errors.append(str(exc)))
    signed_in.goto(f"{hearth.url}/login")
    signed_in.fill("#username", "admin")
    signed_in.fill("#password", PASSWORD)
    signed_in.keyboard.press("Enter")
    signed_in.wait_for_url(re.compile(r"/chat$"))
    yield signed_in
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def _say_the_question(page: Page, seconds: float) -> None:
    """Press the microphone (by keyboard), let the fake device say the question, press it again."""
    page.locator("#mic").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#voice-state")).to_have_attribute("data-state", "recording")
    page.wait_for_timeout(seconds * 1000)
    page.keyboard.press("Enter")


def test_voice_hears_the_question_and_speaks_the_answer(
    page: Page, server: tuple[RunningHearth, FakeOpenAI], microphone: tuple[Path, float]
) -> None:
    hearth, _ = server
    page.goto(f"{hearth.url}/voice")
    expect(page.locator("#voice-state")).to_have_attribute("data-state", "ready")  # the socket signed in
    _say_the_question(page, microphone[1])
    turn = page.locator("#turns .turn").first
    expect(turn).to_have_attribute("data-status", "complete", timeout=90_000)
    heard = turn.locator(".you .text").inner_text()
    assert {"capital", "france"} <= set(words(heard)), heard
    assert turn.locator(".hearth .text").inner_text().strip()  # the embedded model's reply, as text…
    assert int(turn.get_attribute("data-clips") or 0) >= 1  # …and as sound, decoded and played
    assert float(turn.get_attribute("data-audio-seconds") or 0) > 0.3
    for stage in ("transcription", "llm_first_token", "first_audio", "total", "heard"):
        expect(turn.locator(f'dd[data-stage="{stage}"]')).to_have_text(re.compile(r"^\d+ ms$"))
    shoot(page, "voice")


def test_voice_barge_in_stops_the_answer(
    page: Page, server: tuple[RunningHearth, FakeOpenAI], microphone: tuple[Path, float]
) -> None:
    hearth, upstream = server
    # A long answer, written slowly: still being written and spoken when the user interrupts.
    upstream.behaviour.stream_text = "The moon is far away from us. " * 20
    upstream.behaviour.chunk_delay = 0.2
    try:
        page.goto(f"{hearth.url}/voice")
        expect(page.locator("#voice-state")).to_have_attribute("data-state", "ready")
        page.select_option("#voice-model", "scripted")
        _say_the_question(page, microphone[1])
        turn = page.locator("#turns .turn").first
        expect(turn).not_to_have_attribute("data-clips", "0", timeout=90_000)  # the first sentence plays
        page.keyboard.press("Escape")
        expect(turn).to_have_attribute("data-status", "interrupted")
        expect(page.locator("#interrupt")).to_be_disabled()
        expect(page.locator("#voice-state")).to_have_attribute("data-state", "ready")

        def stored() -> list[dict]:
            found = httpx.get(f"{hearth.url}/api/voice/requests", headers=hearth.headers()).json()
            return [r for r in found if r["response"] and r["response"]["interrupted"]]

        interrupted = wait_until(stored, 30, what="the interrupted turn stored")
        assert len(interrupted[0]["response"]["response_text"]) < len(upstream.behaviour.stream_text)
    finally:
        upstream.behaviour.stream_text = None
        upstream.behaviour.chunk_delay = 0.0


def test_planner_from_words_to_a_downloaded_manifest(page: Page, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hearth, _ = server
    page.goto(f"{hearth.url}/planner")
    page.fill("#use-case", "A chatbot for 500 employees")
    page.uncheck("#use-model")  # the rule-based parser: quick and always the same
    page.get_by_role("button", name="Draft the spec").click()
    users = page.locator("#spec-workload-users")
    expect(users).to_have_value("500")
    users.fill("2000")  # the spec is editable: plan for more people than the text said
    page.get_by_role("button", name="Find options").click()
    expect(page.locator("#options-section")).to_have_attribute("aria-busy", "false")
    rows = page.locator("#option-rows tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("#pareto-chart svg circle.front-dot").first).to_be_visible()
    assert page.locator("#pareto-chart svg circle").count() >= rows.count()
    # Ranked by cost alone, the first option is the cheapest of the list.
    for weight, value in (("accuracy", "0"), ("cost", "1"), ("latency", "0"), ("complexity", "0")):
        page.fill(f"#weight-{weight}", value)
    page.get_by_role("button", name="Find options").click()
    expect(page.locator("#options-section")).to_have_attribute("aria-busy", "false")  # the new plan is in
    costs = [
        int(re.sub(r"[^0-9]", "", c))
        for c in page.locator("#option-rows tr td:nth-child(4)").all_inner_texts()
    ]
    assert costs and costs[0] == min(costs), costs
    first_model = rows.first.get_attribute("data-model")
    rows.first.get_by_role("button", name=re.compile("Manifests")).click()
    expect(page.locator("#manifest-yaml")).to_contain_text("InferenceService")
    # No cluster here: Deploy is off and says why.
    expect(page.locator("#deploy")).to_be_disabled()
    expect(page.locator("#deploy-reason")).to_contain_text("No Kubernetes cluster is configured")
    with page.expect_download() as downloading:
        page.click("#manifest-download")
    saved = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(saved)
    assert saved.suffix == ".yaml"
    manifests = [m for m in yaml.safe_load_all(saved.read_text()) if m]
    service = next(m for m in manifests if m["kind"] == "InferenceService")
    assert first_model in yaml.safe_dump(service)
    shoot(page, "planner")


def test_bench_runs_an_alias_live_and_keeps_the_run(page: Page, server) -> None:  # type: ignore[no-untyped-def]
    hearth, _ = server
    page.goto(f"{hearth.url}/bench")
    page.select_option("#bench-alias", "scripted")
    page.fill("#bench-levels", "1, 2")
    page.fill("#bench-requests", "4")
    page.click("#bench-run")
    expect(page.locator("#bench-form")).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator("#level-rows tr")).to_have_count(2)
    expect(page.locator("#level-rows tr").first).to_contain_text("synchronous")
    expect(page.locator("#latency-chart svg polyline")).to_have_count(4)  # TTFT and E2E, p50 and p95
    expect(page.locator("#throughput-chart svg > circle.s0")).to_have_count(2)  # not the legend's
    expect(page.locator("#run-rows tr").first).to_have_attribute("data-status", "completed")
    expect(page.locator("#run-rows tr").first).to_contain_text("alias:scripted")
    shoot(page, "bench")


def test_admin_models_usage_and_users(page: Page, server) -> None:  # type: ignore[no-untyped-def]
    hearth, upstream = server
    page.goto(f"{hearth.url}/admin/models")
    card = page.locator('section[data-alias="scripted"]')
    expect(card).to_be_visible()
    expect(card.locator("tr[data-health=ok]")).to_have_count(1)
    for _ in range(3):  # traffic between two reads of /metrics
        httpx.post(
            f"{hearth.v1}/chat/completions",
            json={"model": "scripted", "messages": [{"role": "user", "content": "hi"}]},
            headers=hearth.headers(),
        ).raise_for_status()
    expect(card.locator("td.rate")).to_have_text(re.compile(r"^0\.[1-9]\d*/s|^[1-9][\d.]*/s"), timeout=15_000)
    shoot(page, "admin-models")
    # A failing upstream: the deployment goes into cooldown, and the screen says so with the time left.
    upstream.behaviour.mode = "error500"
    try:

        def cooling() -> bool:
            httpx.post(
                f"{hearth.v1}/chat/completions",
                json={"model": "scripted", "messages": [{"role": "user", "content": "hi"}]},
                headers=hearth.headers(),
            )
            cards = httpx.get(f"{hearth.v1}/models", headers=hearth.headers()).json()["data"]
            scripted = next(c for c in cards if c["id"] == "scripted")
            return scripted["deployment_details"][0]["health"]["status"] == "cooling_down"

        wait_until(cooling, 30, what="the scripted deployment cooling down", every=0.5)
        expect(card.locator("tr[data-health=cooling_down]")).to_contain_text(
            re.compile(r"cooling down, \d+ s left")
        )
        expect(card).to_have_attribute("data-status", "down")
        expect(card.locator("tr[data-health=cooling_down] td").last).not_to_have_text("—")  # the error
    finally:
        upstream.behaviour.mode = "ok"

    def used() -> bool:
        report = httpx.get(f"{hearth.url}/api/admin/usage", headers=hearth.headers()).json()
        return any(line["alias"] == "scripted" for line in report["data"])

    wait_until(used, 20, what="usage in the ledger")
    page.goto(f"{hearth.url}/admin/usage")
    row = page.locator("#usage-rows tr", has_text=re.compile(r"hk-"))
    expect(row.first).to_contain_text("scripted")
    expect(page.locator("#usage-summary")).to_contain_text("requests")
    shoot(page, "admin-usage")

    page.goto(f"{hearth.url}/admin/users")
    page.fill("#user-name", "frank")
    page.click("text=Create user")
    frank = page.locator('#user-rows tr[data-username="frank"]')
    expect(frank).to_contain_text("active")
    page.once("dialog", lambda d: d.accept())
    frank.get_by_role("button", name="Disable frank").click()
    expect(frank).to_contain_text("disabled")
    frank.get_by_role("button", name="Enable frank").click()
    expect(frank).to_contain_text("active")
    expect(page.locator('#user-rows tr[data-username="admin"] button', has_text="Disable")).to_have_count(0)


def test_each_new_screen_first_load_is_under_300_kb(browser: Browser, page: Page, server) -> None:  # type: ignore[no-untyped-def]
    """The chat page's budget (tests/test_web_browser.py) holds for these screens too: an empty cache, the
    page, its CSS and modules and its first API calls, compressed as sent."""
    hearth, _ = server
    state = page.context.storage_state()
    for path in ("/voice", "/planner", "/bench", "/admin/models", "/admin/usage"):
        context = browser.new_context(storage_state=state)
        fresh = context.new_page()
        sizes: list[int] = []
        fresh.on(
            "requestfinished",
            lambda r, sizes=sizes: sizes.append(
                r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]
            ),
        )
        fresh.goto(hearth.url + path, wait_until="networkidle")
        total = sum(sizes)
        print(f"{path} first load: {len(sizes)} requests, {total / 1024:.1f} KiB transferred")
        assert 0 < total <= 300 * 1024, path
        context.close()
