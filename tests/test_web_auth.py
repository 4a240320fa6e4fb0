"""Web sign-in over HTTP: the session cookie's flags, CSRF on forms and on cookie-authenticated API calls,
sign-out, key sessions, and the 404 page for another user's conversation or document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from hearth.cli.users import users_app
from tests.harness import RunningHearth
from tests.web_helpers import PASSWORD, add_user, form_token, page_token, sign_in, web_server


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHearth]:
    with web_server(tmp_path_factory.mktemp("web-auth")) as (running, _upstream):
        add_user(running, "alice")
        add_user(running, "bob")
        yield running


def _cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def test_password_sign_in_sets_an_httponly_samesite_cookie(hearth: RunningHearth) -> None:
    client = httpx.Client(base_url=hearth.url)
    token = form_token(client.get("/login").text)
    done = client.post(
        "/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD, "next": "/documents"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/documents"
    flags = [part.strip().lower() for part in _cookie(done, "hearth_session").split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # plain http on loopback: a Secure cookie would never come back
    me = client.get("/api/me").json()
    assert me["user"]["username"] == "alice" and me["key"] is None and me["user"]["has_password"]


def test_behind_https_the_cookie_is_secure(hearth: RunningHearth) -> None:
    # The harness's uvicorn trusts X-Forwarded-Proto from 127.0.0.1, as it would from a local proxy.
    https = {"X-Forwarded-Proto": "https"}
    form = httpx.get(f"{hearth.url}/login", headers=https)
    assert "secure" in [p.strip().lower() for p in _cookie(form, "hearth_login_csrf").split(";")]
    token = form_token(form.text)
    # httpx keeps Secure cookies off plain http, as a browser would: send it back by hand.
    done = httpx.post(
        f"{hearth.url}/login",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
        headers={**https, "Cookie": f"hearth_login_csrf={token}"},
    )
    assert "secure" in [p.strip().lower() for p in _cookie(done, "hearth_session").split(";")]


def test_a_wrong_password_or_unknown_user_gets_the_same_refusal(hearth: RunningHearth) -> None:
    for name, password in (("alice", "wrong password"), ("nobody", PASSWORD)):
        client = httpx.Client(base_url=hearth.url)
        token = form_token(client.get("/login").text)
        refused = client.post("/login", data={"csrf_token": token, "username": name, "password": password})
        assert refused.status_code == 401
        assert "Wrong username or password." in refused.text
        assert "hearth_session" not in client.cookies
        assert client.get("/chat").status_code == 303  # still signed out: back to the sign-in page


def test_the_sign_in_form_needs_its_csrf_token(hearth: RunningHearth) -> None:
    client = httpx.Client(base_url=hearth.url)
    client.get("/login")
    forged = client.post("/login", data={"csrf_token": "forged", "username": "alice", "password": PASSWORD})
    assert forged.status_code == 403 and "hearth_session" not in client.cookies
    bare = httpx.post(f"{hearth.url}/login", data={"username": "alice", "password": PASSWORD})
    assert bare.status_code == 403 and "hearth_session" not in bare.cookies


def test_cookie_calls_that_change_state_need_the_csrf_header(hearth: RunningHearth) -> None:
    client, csrf = sign_in(hearth, "alice")
    refused = client.post("/api/rag/collections", json={"name": "no-token"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    wrong = client.post("/api/rag/collections", json={"name": "no-token"}, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert all(c["name"] != "no-token" for c in client.get("/api/rag/collections").json())
    made = client.post("/api/rag/collections", json={"name": "with-token"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    # Bearer callers are unchanged: no CSRF token, even if a cookie came along.
    bearer = client.post(
        "/api/rag/collections",
        json={"name": "by-key"},
        headers={"Authorization": f"Bearer {hearth.admin_key}"},
    )
    assert bearer.status_code == 201 and bearer.json()["owner_id"] != made.json()["owner_id"]


def test_sign_out_needs_the_token_and_ends_the_session(hearth: RunningHearth) -> None:
    client, csrf = sign_in(hearth, "bob")
    cookie = client.cookies["hearth_session"]
    refused = client.post("/logout", data={})
    assert refused.status_code == 403 and client.get("/api/me").status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    # The old cookie is dead on the server, not only deleted in this browser.
    replayed = httpx.get(f"{hearth.url}/api/me", cookies={"hearth_session": cookie})
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "invalid_session"


def test_a_key_session_acts_as_the_key_and_ends_with_it(hearth: RunningHearth) -> None:
    made = httpx.post(
        f"{hearth.url}/api/admin/keys", json={"user": "bob", "name": "browser"}, headers=hearth.headers()
    ).json()
    client = httpx.Client(base_url=hearth.url)
    token = form_token(client.get("/login").text)
    assert client.post("/login", data={"csrf_token": token, "api_key": made["key"]}).status_code == 303
    me = client.get("/api/me").json()
    assert me["user"]["username"] == "bob" and me["key"]["id"] == made["id"]
    httpx.delete(f"{hearth.url}/api/admin/keys/{made['id']}", headers=hearth.headers())
    assert client.get("/api/me").status_code == 401
    assert client.get("/chat").status_code == 303


def test_another_users_conversation_or_document_is_a_404_page(hearth: RunningHearth) -> None:
    alice, alice_csrf = sign_in(hearth, "alice")
    bob, _ = sign_in(hearth, "bob")
    started = alice.post(
        "/api/conversations", json={"content": "hello", "stream": False}, headers={"X-CSRF-Token": alice_csrf}
    )
    assert started.status_code == 201, started.text
    conversation = started.json()["conversation_id"]
    alice.post("/api/rag/collections", json={"name": "private"}, headers={"X-CSRF-Token": alice_csrf})
    doc = alice.post(
        "/api/rag/collections/private/documents",
        json={"text": "Alice's secret notes.", "title": "Secrets", "source": "secrets.txt"},
        headers={"X-CSRF-Token": alice_csrf},
    ).json()["document"]["id"]

    assert alice.get(f"/chat/{conversation}").status_code == 200
    assert alice.get(f"/documents/{doc}").status_code == 200
    for url in (f"/chat/{conversation}", f"/documents/{doc}", "/chat/no-such-id"):
        page = bob.get(url)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "does not exist, or it is not yours" in page.text
        assert "Secrets" not in page.text and "hello" not in page.text


def test_admin_screens_are_for_admins(hearth: RunningHearth) -> None:
    bob, _ = sign_in(hearth, "bob")
    assert bob.get("/admin/keys").status_code == 403
    assert 'href="/admin/keys"' not in bob.get("/chat").text
    admin = httpx.Client(base_url=hearth.url)
    token = form_token(admin.get("/login").text)
    admin.post("/login", data={"csrf_token": token, "api_key": hearth.admin_key})
    assert admin.get("/admin/keys").status_code == 200
    assert page_token(admin.get("/admin/keys").text)


def test_signed_out_pages_go_to_sign_in_and_come_back(hearth: RunningHearth) -> None:
    client = httpx.Client(base_url=hearth.url)
    sent = client.get("/documents?c=x")
    assert sent.status_code == 303 and sent.headers["location"] == "/login?next=%2Fdocuments%3Fc%3Dx"
    token = form_token(client.get(sent.headers["location"]).text)
    done = client.post(
        "/login",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD, "next": "//evil.example/"},
    )
    assert done.headers["location"] == "/chat"  # never off-site


def test_own_password_change_needs_the_current_one(hearth: RunningHearth) -> None:
    add_user(hearth, "carol")
    client, csrf = sign_in(hearth, "carol")
    wrong = client.put(
        "/api/me/password",
        json={"current": "not it at all", "password": "a new password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert wrong.status_code == 403
    ok = client.put(
        "/api/me/password",
        json={"current": PASSWORD, "password": "a new password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert ok.status_code == 204 and client.get("/api/me").status_code == 200  # this session goes on
    sign_in(hearth, "carol", "a new password")


def test_cli_set_password_disable_enable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HEARTH_DATABASE_URL", raising=False)
    cli = typer.Typer()
    cli.add_typer(users_app, name="users")
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "create", "dora"]).exit_code == 0
    done = runner.invoke(cli, ["users", "set-password", "dora", "--password-stdin"], input="long enough pw\n")
    assert done.exit_code == 0 and "password set for dora" in done.stdout
    short = runner.invoke(cli, ["users", "set-password", "dora", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "8 to 1024" in short.output
    ghost = runner.invoke(
        cli, ["users", "set-password", "ghost", "--password-stdin"], input="long enough pw\n"
    )
    assert ghost.exit_code == 1
    listed = runner.invoke(cli, ["users", "list"])
    assert "dora" in listed.stdout
    off = runner.invoke(cli, ["users", "disable", "dora"])
    assert off.exit_code == 0 and "dora disabled" in off.stdout
    assert "disabled" in runner.invoke(cli, ["users", "list"]).stdout
    assert runner.invoke(cli, ["users", "enable", "dora"]).exit_code == 0
    assert "disabled" not in runner.invoke(cli, ["users", "list"]).stdout
    assert runner.invoke(cli, ["users", "disable", "ghost"]).exit_code == 1


def test_rename_a_conversation(hearth: RunningHearth) -> None:
    alice, csrf = sign_in(hearth, "alice")
    bob, bob_csrf = sign_in(hearth, "bob")
    started = alice.post(
        "/api/conversations", json={"content": "plans", "stream": False}, headers={"X-CSRF-Token": csrf}
    ).json()
    url = f"/api/conversations/{started['conversation_id']}"
    renamed = alice.patch(url, json={"title": "  Garden   plans "}, headers={"X-CSRF-Token": csrf})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Garden plans"
    assert alice.get(url).json()["title"] == "Garden plans"
    assert alice.patch(url, json={"title": "   "}, headers={"X-CSRF-Token": csrf}).status_code == 422
    assert bob.patch(url, json={"title": "mine now"}, headers={"X-CSRF-Token": bob_csrf}).status_code == 404
    # A title you chose stays when the conversation goes on.
    alice.post(f"{url}/messages", json={"content": "more", "stream": False}, headers={"X-CSRF-Token": csrf})
    assert alice.get(url).json()["title"] == "Garden plans"


def test_repeated_wrong_passwords_are_throttled(hearth: RunningHearth) -> None:
    add_user(hearth, "erin")
    client = httpx.Client(base_url=hearth.url)
    token = form_token(client.get("/login").text)
    for _ in range(5):
        wrong = client.post(
            "/login", data={"csrf_token": token, "username": "erin", "password": "guess guess"}
        )
        assert wrong.status_code == 401
    # Now even the right password waits: the guesser cannot tell.
    held = client.post("/login", data={"csrf_token": token, "username": "erin", "password": PASSWORD})
    assert held.status_code == 429 and int(held.headers["retry-after"]) > 0
    assert "Too many failed attempts" in held.text and "hearth_session" not in client.cookies
    # Other users are not held up.
    sign_in(hearth, "alice")
