"""The Notifications screen and the Account page's "Your data" in a real browser (Playwright driving
Debian's Chromium) against a real server: the inbox (mark read, a test notification), saving where and
when to be notified (a bad time zone refused), downloading one's data and erasing one's account."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator

import httpx
import orjson
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.harness import RunningHearth
from tests.test_web_browser import CHROMIUM, shoot
from tests.web_helpers import PASSWORD, add_user, web_server

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHearth]:
    with web_server(tmp_path_factory.mktemp("web-notify")) as (running, _):
        yield running


def signed_in(browser, hearth: RunningHearth, user: str) -> Page:  # type: ignore[no-untyped-def]
    page = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True).new_page()
    page.goto(f"{hearth.url}/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/chat$"))
    return page


def test_inbox_preferences_export_and_erase(hearth: RunningHearth, tmp_path) -> None:  # type: ignore[no-untyped-def]
    add_user(hearth, "eve")
    key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "eve"}, headers=hearth.headers()).json()[
        "key"
    ]
    eve = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        f"{hearth.url}/api/notify/test",
        json={"title": "Plant the tulips", "body": "Before frost."},
        headers=eve,
    )
    assert r.status_code == 200, r.text
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = signed_in(browser, hearth, "eve")
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.get_by_role("link", name="Notifications").click()
        expect(page.locator("h1")).to_have_text("Notifications")
        item = page.locator(".inbox-item", has_text="Plant the tulips")
        expect(item).to_have_attribute("data-read", "no")
        expect(page.locator("#unread")).to_have_text("1 unread")
        shoot(page, "notifications")
        item.get_by_role("button", name="Mark read").click()
        expect(item).to_have_attribute("data-read", "yes")
        expect(page.locator("#unread")).to_have_text("0 unread")
        page.get_by_role("button", name="Send a test notification").click()
        expect(page.locator(".inbox-item", has_text="Test notification")).to_have_count(1)
        expect(page.locator("#unread")).to_have_text("1 unread")

        # Preferences: a bad time zone is refused with its reason, and nothing changes.
        page.fill("#time-zone", "Atlantis/Capital")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#toast")).to_contain_text("unknown time zone")
        expect(page.locator("#time-zone")).to_have_value("Atlantis/Capital")  # kept, to be corrected
        assert httpx.get(f"{hearth.url}/api/notify/preferences", headers=eve).json()["time_zone"] == "UTC"
        page.fill("#time-zone", "Europe/Paris")
        page.fill("#quiet-start", "22:00")
        page.fill("#quiet-end", "07:00")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#toast")).to_have_text("Saved")
        prefs = httpx.get(f"{hearth.url}/api/notify/preferences", headers=eve).json()
        assert prefs["time_zone"] == "Europe/Paris" and prefs["quiet_hours"] == {
            "start": "22:00",
            "end": "07:00",
        }
        page.reload()
        expect(page.locator("#time-zone")).to_have_value("Europe/Paris")

        # Your data: the archive, then erasure (a wrong name refused first).
        page.goto(f"{hearth.url}/account")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data").click()
        archive = zipfile.ZipFile(download.value.path())
        inbox = orjson.loads(archive.read("notify.json"))["inbox"]
        assert {i["title"] for i in inbox} == {"Plant the tulips", "Test notification"}
        shoot(page, "account-data")
        page.fill("#erase-confirm", "not-eve")
        page.get_by_role("button", name="Erase my account").click()
        expect(page.locator("#toast")).to_contain_text("confirm")
        assert httpx.get(f"{hearth.url}/api/me", headers=eve).status_code == 200
        page.fill("#erase-confirm", "eve")
        page.get_by_role("button", name="Erase my account").click()
        page.wait_for_url(re.compile(r"/login"))
        assert httpx.get(f"{hearth.url}/api/me", headers=eve).status_code == 401
        assert not errors, f"script errors on the page: {errors}"
        browser.close()
