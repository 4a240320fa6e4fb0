"""The web UI in a real browser: Playwright driving Debian's Chromium (`make test` installs it; no browser
download) against a real Hearth server with the embedded models, plus a `scripted` chat alias on a fake
upstream for answers a test must control (citations, Markdown, script injection). Screenshots of every
screen at 375 and 1440 px go to test-artifacts/web/ (git-ignored)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.fake_openai import FakeOpenAI
from tests.harness import RunningHearth
from tests.helpers import wait_until
from tests.web_helpers import PASSWORD, add_user, web_server

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
WIDTHS = (375, 1440)
# These machines run several test suites at once: an API call that takes 0.3 s idle can take seconds, so the
# page is given longer than Playwright's default 5 s to show a result (a wait, never a timing assertion).
expect.set_options(timeout=20_000)
XSS_TITLE = "<img src=x onerror=\"window.__xss='title'\"><script>window.__xss='title2'</script>Lease"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHearth, FakeOpenAI]]:
    # `chat` is the embedded SmolLM2 (short replies); titles come from the fake, so no test waits on them.
    with web_server(
        tmp_path_factory.mktemp("web-ui"), embedded_chat=True, chat_max_tokens=24, chat_title_model="scripted"
    ) as running:
        hearth, _ = running
        httpx.put(
            f"{hearth.url}/api/admin/users/admin/password",
            json={"password": PASSWORD},
            headers=hearth.headers(),
        ).raise_for_status()
        add_user(hearth, "bob")
        yield running


@pytest.fixture(scope="module")
def browser(server: tuple[RunningHearth, FakeOpenAI]) -> Iterator[Browser]:
    # After the server: sync Playwright runs an event loop in this thread, and the harness's start-up
    # (asyncio.run) cannot run inside one.
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


def _signed_in(browser: Browser, hearth: RunningHearth, user: str = "admin") -> Page:
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.goto(f"{hearth.url}/login")
    # Keyboard only: the username field has focus, Tab reaches the password, Enter submits.
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/chat$"))
    return page


@pytest.fixture
def admin_page(browser: Browser, server: tuple[RunningHearth, FakeOpenAI]) -> Iterator[Page]:
    page = _signed_in(browser, server[0])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.context.close()
    assert not errors, f"script errors on the page: {errors}"


# Visible controls and links without an accessible name: no <label>, aria-label(ledby), text or title.
UNLABELLED = """() => [...document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button, a[href]")]
  .filter((e) => e.getClientRects().length && !e.labels?.length && !e.getAttribute("aria-label")
    && !e.getAttribute("aria-labelledby") && !e.textContent.trim() && !e.title)
  .map((e) => e.outerHTML.slice(0, 120))"""


def shoot(page: Page, name: str) -> None:
    """Screenshots at both widths; every visible control must be labelled, focus must follow the reading
    order, and the page must not scroll sideways at either width."""
    assert not page.evaluate(UNLABELLED), f"{name}: controls without a label: {page.evaluate(UNLABELLED)}"
    # Focus follows the page's reading order: no positive tabindex reorders it.
    assert page.locator("[tabindex]:not([tabindex='0']):not([tabindex='-1'])").count() == 0, name
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} scrolls sideways at {width} px"
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})


def _send(page: Page, text: str, *, model: str = "chat") -> None:
    page.select_option("#model", model)
    page.fill("#prompt", text)
    page.keyboard.press("Enter")


def _last_reply(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("article.msg-assistant").last


def test_sign_in_page_and_wrong_password(browser: Browser, server: tuple[RunningHearth, FakeOpenAI]) -> None:
    hearth, _ = server
    page = browser.new_context().new_page()
    page.goto(f"{hearth.url}/chat")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fchat$"))
    shoot(page, "login")
    page.fill("#username", "admin")
    page.fill("#password", "not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    page.fill("#api_key", hearth.admin_key)
    page.get_by_role("button", name="Sign in with key").click()
    page.wait_for_url(re.compile(r"/chat$"))
    page.context.close()


def test_chat_streams_an_embedded_model_reply_and_keeps_it(admin_page: Page) -> None:
    page = admin_page
    _send(page, "Say hello to the household.")
    reply = _last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)
    assert reply.locator(".body").inner_text().strip()
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))
    conversation = page.url
    expect(page.locator("#conv-list a[aria-current=page]")).to_be_visible()
    shoot(page, "chat")
    page.goto(conversation)  # stored: both messages come back
    expect(page.locator("article.msg-user")).to_have_text(re.compile("Say hello to the household."))
    expect(page.locator("article.msg-assistant")).to_have_count(1)


def test_stop_cuts_a_streaming_reply(admin_page: Page, server: tuple[RunningHearth, FakeOpenAI]) -> None:
    _, upstream = server
    upstream.behaviour.stream_text = "Once upon a time " * 40
    upstream.behaviour.chunk_delay = 0.15
    try:
        page = admin_page
        _send(page, "Tell me a long story", model="scripted")
        reply = _last_reply(page)
        expect(reply.locator(".body")).to_contain_text("Once upon")  # shown while it streams
        expect(page.locator("#stop")).to_be_visible()
        assert reply.get_attribute("data-status") is None
        page.click("#stop")
        expect(reply).to_have_attribute("data-status", "interrupted")
        expect(reply).to_contain_text("Stopped before the end.")
        expect(page.locator("#stop")).to_be_hidden()
        # The server stores the partial reply once it sees the browser hang up: wait for that, then reload.
        hearth = server[0]
        conversation = page.url.rsplit("/", 1)[-1]
        wait_until(
            lambda: (
                httpx.get(
                    f"{hearth.url}/api/conversations/{conversation}", headers=hearth.headers()
                ).status_code
                == 200
            ),
            30,
            what="the interrupted exchange stored",
        )
        page.reload()
        stored = page.locator("article.msg-assistant").last
        expect(stored).to_contain_text("Stopped before the end.")
    finally:
        upstream.behaviour.stream_text = None
        upstream.behaviour.chunk_delay = 0.0


def test_conversations_rename_search_delete(admin_page: Page) -> None:
    page = admin_page
    _send(page, "A chat about the zebra crossing", model="scripted")
    expect(_last_reply(page)).to_have_attribute("data-status", "complete")
    _last_reply(page).get_by_role("button", name="Copy").click()
    expect(page.locator("#toast")).to_have_text("Copied")
    # The Markdown as the model wrote it.
    assert page.evaluate("navigator.clipboard.readText()") == "tok0 tok1 tok2 tok3 tok4 "
    _last_reply(page).get_by_role("button", name="Regenerate").click()  # the same question, asked again
    expect(page.locator("article.msg-assistant[data-status=complete]")).to_have_count(2)
    expect(page.locator("article.msg-user", has_text="A chat about the zebra crossing")).to_have_count(2)
    expect(
        page.locator("article.msg-assistant").first.get_by_role("button", name="Regenerate")
    ).to_be_hidden()
    page.once("dialog", lambda d: d.accept("Zebra plans"))
    page.click("#rename")
    expect(page.locator("#conv-title")).to_have_text("Zebra plans")
    page.goto(f"{page.url.split('/chat')[0]}/chat")
    page.fill("#conv-search", "zebra")
    expect(page.locator("#conv-list a", has_text="Zebra plans")).to_have_count(1)
    page.click("#conv-list a:has-text('Zebra plans')")
    page.once("dialog", lambda d: d.accept())
    page.click("#delete")
    page.wait_for_url(re.compile(r"/chat$"))
    page.fill("#conv-search", "zebra")
    expect(page.locator("#conv-list")).to_contain_text("No matches.")


def _files(tmp_path: Path) -> list[Path]:
    files = {
        "lease.txt": "The lease allows one cat and one dog. Rent is due on the first day of each month.",
        "boiler.md": "# Boiler\n\nThe boiler is serviced every October by the gas engineer.",
        "garden.html": (
            "<html><head><title>Garden</title></head>"
            "<body><p>Tomatoes go in after the last frost.</p></body></html>"
        ),
    }
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    return paths


def test_documents_upload_many_and_see_them_indexed(admin_page: Page, tmp_path: Path) -> None:
    page = admin_page
    page.goto(page.url.replace("/chat", "/documents"))
    page.fill("#coll-name", "papers")
    page.keyboard.press("Enter")
    expect(page.locator("#coll-title")).to_have_text("papers")
    page.set_input_files("#file-input", [str(p) for p in _files(tmp_path)])
    rows = page.locator("#doc-rows tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#doc-rows tr[data-status=indexed]")).to_have_count(3, timeout=60_000)
    # Drag and drop: a file the server cannot read fails with its reason, beside the others.
    page.evaluate(
        """() => {
        const dt = new DataTransfer();
        const bytes = new Uint8Array([0, 1, 2]);
        dt.items.add(new File([bytes], "photo.exe", {type: "application/octet-stream"}));
        const drop = new DragEvent("drop", {dataTransfer: dt, bubbles: true});
        document.getElementById("dropzone").dispatchEvent(drop);
    }"""
    )
    failed = page.locator("#doc-rows tr[data-status=failed]")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("photo.exe")
    assert failed.locator(".error").inner_text().strip()
    # The retrieval debugger: the chunks a query finds, their scores and the stage latencies.
    page.click("#debugger summary")
    page.fill("#debug-query", "When is the boiler serviced?")
    page.click("#debug-form button")
    expect(page.locator("#debug-rows tr").first).to_contain_text("October")
    expect(page.locator("#debug-latency")).to_contain_text("total")
    # Sharing, read-only, with another user.
    page.fill("#share-user", "bob")
    page.click("#share-form button")
    expect(page.locator("#shared-with")).to_contain_text("bob")
    shoot(page, "documents")
    page.locator("#doc-rows tr", has_text="garden.html").get_by_role("link").click()
    expect(page.locator("h1")).to_have_text("Garden")
    shoot(page, "document")


def test_rag_answer_with_citations_markdown_and_a_source_dialog(
    admin_page: Page, server: tuple[RunningHearth, FakeOpenAI]
) -> None:
    hearth, upstream = server
    httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "pets"}, headers=hearth.headers())
    httpx.post(
        f"{hearth.url}/api/rag/collections/pets/documents",
        json={"text": "Tenants may keep one cat. Dogs need written consent.", "title": "Pet rules"},
        headers=hearth.headers(),
    ).raise_for_status()
    _wait_all_indexed(hearth, "pets")
    upstream.behaviour.stream_text = (
        "You may keep **one cat** [1].\n\n"
        "| pet | allowed |\n|---|---|\n| cat | yes |\n\n"
        "```\nconsent = True\n```\n"
    )
    try:
        page = admin_page
        page.reload()
        page.check("#rag")
        page.select_option("#collection", "pets")
        _send(page, "Can I keep a cat?", model="scripted")
        reply = _last_reply(page)
        expect(reply).to_have_attribute("data-status", "complete")
        expect(reply.locator(".body table td", has_text="cat")).to_be_visible()
        expect(reply.locator(".body pre code")).to_have_text("consent = True")
        expect(reply.locator(".body strong")).to_have_text("one cat")
        reply.locator("button.cite", has_text="[1]").click()
        dialog = page.locator("#cite-dialog")
        expect(dialog).to_be_visible()
        expect(page.locator("#cite-title")).to_have_text("[1] Pet rules")
        expect(page.locator("#cite-text")).to_contain_text("Tenants may keep one cat.")
        assert re.search(r"/documents/[0-9a-f]{32}$", page.locator("#cite-link").get_attribute("href") or "")
        shoot(page, "chat-citation")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(reply.locator(".sources")).to_contain_text("Pet rules")
    finally:
        upstream.behaviour.stream_text = None


def _wait_all_indexed(hearth: RunningHearth, collection: str) -> None:
    def done() -> bool:
        docs = httpx.get(
            f"{hearth.url}/api/rag/collections/{collection}/documents", headers=hearth.headers()
        ).json()
        return bool(docs) and all(d["status"] == "indexed" for d in docs)

    wait_until(done, 60, what=f"{collection} indexed")


def test_markdown_and_titles_cannot_inject_script(
    admin_page: Page, server: tuple[RunningHearth, FakeOpenAI]
) -> None:
    hearth, upstream = server
    httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "tricks"}, headers=hearth.headers())
    httpx.post(
        f"{hearth.url}/api/rag/collections/tricks/documents",
        json={"text": "The lease ends in June.", "title": XSS_TITLE},
        headers=hearth.headers(),
    ).raise_for_status()
    _wait_all_indexed(hearth, "tricks")
    upstream.behaviour.stream_text = (
        "Hi <script>window.__xss='answer'</script><img src=x onerror=\"window.__xss='img'\"> "
        "[click me](javascript:window.__xss='link') <a href=\"javascript:window.__xss='a'\">raw</a> "
        "<iframe src=\"javascript:window.__xss='frame'\"></iframe> see [1]."
    )
    try:
        page = admin_page
        page.reload()
        page.check("#rag")
        page.select_option("#collection", "tricks")
        _send(page, "When does the lease end?", model="scripted")
        reply = _last_reply(page)
        expect(reply).to_have_attribute("data-status", "complete")
        html = reply.locator(".body").inner_html()
        assert "<script" not in html and "onerror" not in html and "javascript:" not in html
        assert "<iframe" not in html
        link = reply.locator(".body a", has_text="click me")
        assert link.get_attribute("href") is None
        link.click()
        reply.locator(".body a", has_text="raw").click()
        reply.locator("button.cite").click()
        expect(page.locator("#cite-title")).to_have_text(f"[1] {XSS_TITLE}")  # shown as text
        page.keyboard.press("Escape")
        page.goto(page.url.split("/chat")[0] + "/documents?c=tricks")
        expect(page.locator("#doc-rows")).to_contain_text("<script>window.__xss='title2'</script>")
        page.locator("#doc-rows a").first.click()
        expect(page.locator("h1")).to_have_text(XSS_TITLE)
        assert page.evaluate("window.__xss") is None
    finally:
        upstream.behaviour.stream_text = None


def test_admin_creates_and_revokes_a_key(admin_page: Page, server: tuple[RunningHearth, FakeOpenAI]) -> None:
    hearth, _ = server
    page = admin_page
    page.click("nav >> text=API keys")
    page.select_option("#key-user", "bob")
    page.fill("#key-name", "laptop")
    page.click("text=Create key")
    expect(page.locator("#new-key")).to_be_visible()
    key = page.locator("#new-key-value").inner_text()
    assert key.startswith("hk-") and len(key) == 43
    assert httpx.get(f"{hearth.url}/api/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    row = page.locator("#key-rows tr", has_text="laptop")
    expect(row).to_have_attribute("data-status", "active")
    shoot(page, "admin-keys")
    page.reload()  # shown once: gone after a reload
    expect(page.locator("#new-key")).to_be_hidden()
    assert key not in page.content()
    page.once("dialog", lambda d: d.accept())
    page.locator("#key-rows tr", has_text="laptop").get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.locator("#key-rows tr", has_text="laptop")).to_have_attribute("data-status", "revoked")
    assert httpx.get(f"{hearth.url}/api/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_other_screens_and_the_404_page(
    browser: Browser, admin_page: Page, server: tuple[RunningHearth, FakeOpenAI]
) -> None:
    hearth, _ = server
    page = admin_page
    for path, name, heading in (
        ("/admin/users", "admin-users", "Users"),
        ("/account", "account", "Your account"),
    ):
        page.goto(hearth.url + path)
        expect(page.locator("h1")).to_have_text(heading)
        shoot(page, name)
    _send_from_chat(page, hearth)
    conversation = page.url
    bob = _signed_in(browser, hearth, "bob")
    response = bob.goto(conversation)
    assert response is not None and response.status == 404
    expect(bob.locator("h1")).to_have_text("Not found")
    shoot(bob, "not-found")
    bob.goto(hearth.url + "/admin/keys")
    expect(bob.locator("h1")).to_have_text("Admins only")
    bob.context.close()


def _send_from_chat(page: Page, hearth: RunningHearth) -> None:
    page.goto(hearth.url + "/chat")
    _send(page, "Private thoughts", model="scripted")
    expect(_last_reply(page)).to_have_attribute("data-status", "complete")


def test_chat_first_load_is_under_300_kb_compressed(
    browser: Browser, server: tuple[RunningHearth, FakeOpenAI]
) -> None:
    hearth, _ = server
    signed_in = _signed_in(browser, hearth)
    # A new context with the same cookie: an empty cache, as on a first visit.
    context = browser.new_context(storage_state=signed_in.context.storage_state())
    signed_in.context.close()
    page = context.new_page()
    sizes: list[int] = []
    page.on(
        "requestfinished",
        lambda r: sizes.append(r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]),
    )
    page.goto(f"{hearth.url}/chat", wait_until="networkidle")
    total = sum(sizes)
    print(f"chat page first load: {len(sizes)} requests, {total / 1024:.1f} KiB transferred")
    assert 0 < total <= 300 * 1024
    context.close()
