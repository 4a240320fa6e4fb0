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


def test_browser_push_worker_badge_and_subscribe_error(hearth: RunningHearth) -> None:
    """The browser side of web push: "Turn on push" registers the push worker and asks the browser's push
    service for a subscription. Offline (here and in CI) that service is unreachable, so the page must say
    so and store nothing. A push delivered to the worker (through the DevTools protocol, as DevTools' own
    "Push" button does) shows a system notification and refreshes the open inbox and the navigation badge."""
    add_user(hearth, "pia")
    key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "pia"}, headers=hearth.headers()).json()[
        "key"
    ]
    pia = {"Authorization": f"Bearer {key}"}
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.grant_permissions(["notifications"], origin=hearth.url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        cdp = context.new_cdp_session(page)
        registrations: dict[str, str] = {}
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda event: registrations.update(
                {r["scopeURL"]: r["registrationId"] for r in event["registrations"] if not r["isDeleted"]}
            ),
        )
        cdp.send("ServiceWorker.enable")
        page.goto(f"{hearth.url}/login")
        page.fill("#username", "pia")
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/chat$"))
        badge = page.locator('header nav a[href="/notifications"] .badge')
        expect(badge).to_be_hidden()  # nothing unread yet

        # An unread notification shows on the navigation bar of any page.
        assert (
            httpx.post(
                f"{hearth.url}/api/notify/test", json={"title": "Water the fern"}, headers=pia
            ).status_code
            == 200
        )
        page.reload()
        expect(badge).to_have_text("1")

        page.get_by_role("link", name="Notifications").click()
        expect(page.locator(".inbox-item")).to_have_count(1)
        page.get_by_role("button", name="Turn on push in this browser").click()
        expect(page.locator("#toast")).to_contain_text("push service refused to subscribe")
        assert httpx.get(f"{hearth.url}/api/notify/subscriptions", headers=pia).json() == []
        expect(page.locator("#push-count")).to_have_text("0")
        scope = f"{hearth.url}/static/app/js/"
        page.wait_for_function(
            "async () => Boolean((await navigator.serviceWorker.getRegistration("
            "'/static/app/js/push-sw.js'))?.active)"
        )
        assert scope in registrations, registrations

        # What the server's WebPush channel sends (notify/channels.py), as the browser would hand it over.
        assert (
            httpx.post(
                f"{hearth.url}/api/notify/test", json={"title": "Frost tonight"}, headers=pia
            ).status_code
            == 200
        )
        payload = orjson.dumps(
            {
                "id": "n-1",
                "topic": "test",
                "title": "Frost tonight",
                "body": "Cover the roses.",
                "url": "/notifications",
            }
        )
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": hearth.url, "registrationId": registrations[scope], "data": payload.decode()},
        )
        # The open page refreshes its inbox and the badge without a reload.
        expect(page.locator(".inbox-item", has_text="Frost tonight")).to_have_count(1)
        expect(badge).to_have_text("2")
        shown = page.evaluate(
            """async () => {
                const reg = await navigator.serviceWorker.getRegistration('/static/app/js/push-sw.js');
                return (await reg.getNotifications()).map((n) => [n.title, n.body, n.data.url]);
            }"""
        )
        assert shown == [["Frost tonight", "Cover the roses.", "/notifications"]]
        page.get_by_role("button", name="Mark all read").click()
        expect(badge).to_be_hidden()
        assert not errors, f"script errors on the page: {errors}"
        browser.close()
