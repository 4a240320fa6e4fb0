"""The web UI's newer screens over HTTP, on one real server (the `chat` and `scripted` aliases on a fake
upstream): the voice WebSocket signed in by the session cookie and refused from another origin, disabling
users, the password audit events, the bench's short runs (an alias through the gateway, a URL over HTTP) and
their stored history, and who may open the tool and admin screens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hearth.config import Settings
from hearth.web.tool_pages import deploy_blocker
from tests.fake_openai import FakeOpenAI
from tests.harness import RunningHearth
from tests.helpers import wait_until
from tests.web_helpers import PASSWORD, add_user, sign_in, web_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHearth, FakeOpenAI]]:
    with web_server(tmp_path_factory.mktemp("web-tools")) as running:
        hearth, _ = running
        add_user(hearth, "alice")
        add_user(hearth, "bob")
        add_user(hearth, "root2", role="admin")
        yield running


@pytest.fixture
def hearth(server: tuple[RunningHearth, FakeOpenAI]) -> RunningHearth:
    return server[0]


def _ws_url(hearth: RunningHearth) -> str:
    return hearth.url.replace("http://", "ws://") + "/api/voice/stream"


def _first(ws) -> dict:  # type: ignore[no-untyped-def]
    return orjson.loads(ws.recv(timeout=30))


# -- the voice WebSocket and the session cookie --------------------------------------------------------


def test_voice_socket_accepts_the_session_cookie_from_this_origin_only(hearth: RunningHearth) -> None:
    client, _ = sign_in(hearth, "alice")
    cookie = f"hearth_session={client.cookies['hearth_session']}"
    with connect(_ws_url(hearth), additional_headers={"Cookie": cookie}, origin=hearth.url) as ws:
        ready = _first(ws)
        assert ready["type"] == "ready" and ready["session_id"]
    # Another origin (another port of the same host is the same *site*, so SameSite would not stop it).
    for origin in ("http://127.0.0.1:1", "https://evil.example", None):
        with connect(_ws_url(hearth), additional_headers={"Cookie": cookie}, origin=origin) as ws:
            refused = _first(ws)
            assert refused["status"] == 403 and refused["code"] == "cross_origin"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    # A session that ended is a 401, not a wait for an `auth` message.
    client.post("/logout", data={"csrf_token": _form_token(client)})
    with connect(_ws_url(hearth), additional_headers={"Cookie": cookie}, origin=hearth.url) as ws:
        ended = _first(ws)
        assert ended["status"] == 401 and ended["code"] == "invalid_session"
    # Programs are unchanged: a key in the first message, no cookie, any origin.
    with connect(_ws_url(hearth), origin="https://elsewhere.example") as ws:
        ws.send(orjson.dumps({"type": "auth", "api_key": hearth.admin_key}).decode())
        assert _first(ws)["type"] == "ready"


def _form_token(client: httpx.Client) -> str:
    from tests.web_helpers import form_token

    return form_token(client.get("/account").text)


# -- users: disable and enable, password events in the audit log -----------------------------------------


def test_an_admin_disables_and_enables_a_user(hearth: RunningHearth) -> None:
    add_user(hearth, "dave")
    key = httpx.post(
        f"{hearth.url}/api/admin/keys", json={"user": "dave", "name": "k"}, headers=hearth.headers()
    ).json()["key"]
    dave, _ = sign_in(hearth, "dave")
    admin, csrf = sign_in(hearth, "root2")
    off = admin.patch("/api/admin/users/dave", json={"disabled": True}, headers={"X-CSRF-Token": csrf})
    assert off.status_code == 200 and off.json()["disabled"] is True
    # At once: the key, the signed-in browser and a new sign-in all stop working.
    assert httpx.get(f"{hearth.url}/api/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert dave.get("/api/me").status_code == 401
    assert dave.get("/chat").status_code == 303
    with pytest.raises(AssertionError):
        sign_in(hearth, "dave")
    on = admin.patch("/api/admin/users/dave", json={"disabled": False}, headers={"X-CSRF-Token": csrf})
    assert on.status_code == 200 and on.json()["disabled"] is False
    assert httpx.get(f"{hearth.url}/api/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    sign_in(hearth, "dave")
    # Not yourself; not a user who does not exist; not without the CSRF token; not as a user.
    me = admin.patch("/api/admin/users/root2", json={"disabled": True}, headers={"X-CSRF-Token": csrf})
    assert me.status_code == 409 and me.json()["error"]["code"] == "cannot_disable_self"
    ghost = admin.patch("/api/admin/users/ghost", json={"disabled": True}, headers={"X-CSRF-Token": csrf})
    assert ghost.status_code == 404
    assert admin.patch("/api/admin/users/dave", json={"disabled": True}).status_code == 403
    bob, bob_csrf = sign_in(hearth, "bob")
    assert (
        bob.patch("/api/admin/users/dave", json={"disabled": True}, headers={"X-CSRF-Token": bob_csrf})
    ).status_code == 403
    audit = _audit(hearth, "user.disabled")
    assert any(e["target"] == "dave" and e["actor"] == "root2" for e in audit)


def _audit(hearth: RunningHearth, action: str) -> list[dict]:
    found: list[dict] = []

    def seen() -> bool:
        found[:] = httpx.get(
            f"{hearth.url}/api/admin/audit", params={"action": action}, headers=hearth.headers()
        ).json()["data"]
        return bool(found)

    wait_until(seen, 20, what=f"{action} in the audit log")
    return found


def test_password_resets_and_changes_are_audited_without_the_password(hearth: RunningHearth) -> None:
    add_user(hearth, "erin")  # the admin key sets her first password: a reset by "admin"
    erin, csrf = sign_in(hearth, "erin")
    changed = erin.put(
        "/api/me/password",
        json={"current": PASSWORD, "password": "erin's new password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 204
    resets = [e for e in _audit(hearth, "user.password_reset") if e["target"] == "erin"]
    assert resets and resets[0]["actor"] == "admin"
    changes = [e for e in _audit(hearth, "user.password_changed") if e["target"] == "erin"]
    assert len(changes) == 1 and changes[0]["actor"] == "erin"
    text = str(resets) + str(changes)
    assert PASSWORD not in text and "erin's new password" not in text and "argon2" not in text


# -- bench: short runs from the web UI -------------------------------------------------------------------


def _events(response: httpx.Response) -> list[tuple[str, dict]]:
    events = []
    for block in response.text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        name = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), "message")
        data = "".join(ln[5:].strip() for ln in lines if ln.startswith("data:"))
        events.append((name, orjson.loads(data)))
    return events


def test_a_bench_run_of_an_alias_streams_progress_and_is_kept(
    server: tuple[RunningHearth, FakeOpenAI],
) -> None:
    hearth, upstream = server
    admin, csrf = sign_in(hearth, "root2")
    body = {
        "alias": "scripted",
        "concurrency": [2, 1],
        "requests": 6,
        "prompt_tokens": 16,
        "output_tokens": 5,
    }
    before = upstream.stats.requests
    ran = admin.post("/api/bench/runs", json=body, headers={"X-CSRF-Token": csrf}, timeout=120)
    assert ran.status_code == 200 and ran.headers["content-type"].startswith("text/event-stream")
    events = _events(ran)
    names = [name for name, _ in events]
    assert names[0] == "started" and names[-1] == "done" and "progress" in names
    levels = [data["level"] for name, data in events if name == "level"]
    assert [lv["concurrency"] for lv in levels] == [1, 2]  # in order, whatever order they were asked in
    for level in levels:
        assert level["successful"] == 6 and level["errored"] == 0
        assert level["ttft_ms"]["p50"] > 0 and level["e2e_ms"]["p95"] >= level["ttft_ms"]["p50"]
        assert level["output_tokens_per_s"] > 0
    assert upstream.stats.requests - before == 12  # through the gateway to the alias's deployment
    run = events[-1][1]["run"]
    assert run["target"] == "alias:scripted" and run["status"] == "completed"
    listed = admin.get("/api/bench/runs").json()
    assert listed[0]["id"] == run["id"]
    assert admin.get(f"/api/bench/runs/{run['id']}").json()["levels"] == levels
    assert admin.get("/api/bench/runs/nope").status_code == 404


def test_a_bench_run_of_a_url_and_the_runs_that_fail(server: tuple[RunningHearth, FakeOpenAI]) -> None:
    hearth, upstream = server
    h = hearth.headers()
    url_run = {"url": upstream.url, "model": "m0", "api_key": "sk-secret-upstream", "requests": 3}
    events = _events(httpx.post(f"{hearth.url}/api/bench/runs", json=url_run, headers=h, timeout=120))
    assert events[-1][0] == "done"
    run = events[-1][1]["run"]
    assert run["target"] == upstream.url and run["levels"][0]["successful"] == 3
    assert "sk-secret-upstream" not in httpx.get(f"{hearth.url}/api/bench/runs/{run['id']}", headers=h).text
    # An unknown alias fails before any load, is said in the stream and kept as a failed run.
    events = _events(
        httpx.post(f"{hearth.url}/api/bench/runs", json={"alias": "nope"}, headers=h, timeout=60)
    )
    assert events[-1][0] == "error" and "nope" in events[-1][1]["message"]
    assert events[-1][1]["run"]["status"] == "failed"
    # An endpoint that does not answer.
    dead = {"url": "http://127.0.0.1:9/v1", "model": "m", "requests": 1}
    events = _events(httpx.post(f"{hearth.url}/api/bench/runs", json=dead, headers=h, timeout=60))
    assert events[-1][0] == "error" and "cannot reach" in events[-1][1]["message"]
    # Bad requests are refused before anything runs.
    for bad in (
        {"alias": "chat", "url": upstream.url, "model": "m0"},
        {},
        {"url": upstream.url},
        {"alias": "chat", "requests": 100_000},
        {"alias": "chat", "concurrency": [1, 2, 3, 4, 5, 6, 7]},
        {"alias": "chat", "concurrency": [500]},
        {"url": "file:///etc/passwd", "model": "m"},
    ):
        refused = httpx.post(f"{hearth.url}/api/bench/runs", json=bad, headers=h)
        assert refused.status_code == 422, (bad, refused.text)
    # Users may not run benches (they load shared models, and fetch URLs from the server).
    bob, csrf = sign_in(hearth, "bob")
    assert (
        bob.post("/api/bench/runs", json={"alias": "chat"}, headers={"X-CSRF-Token": csrf}).status_code == 403
    )
    assert bob.get("/api/bench/runs").status_code == 403


# -- pages ---------------------------------------------------------------------------------------------


def test_tool_and_admin_screens_and_who_may_open_them(hearth: RunningHearth) -> None:
    alice, _ = sign_in(hearth, "alice")
    admin, _ = sign_in(hearth, "root2")
    for path in ("/voice", "/planner"):
        assert alice.get(path).status_code == 200
    for path in ("/bench", "/admin/models", "/admin/usage"):
        assert alice.get(path).status_code == 403
        assert admin.get(path).status_code == 200
        assert httpx.get(hearth.url + path).status_code == 303  # signed out: to the sign-in page
    nav = alice.get("/voice").text
    assert 'href="/planner"' in nav and 'href="/bench"' not in nav
    assert 'href="/admin/models"' in admin.get("/voice").text
    # No cluster on this machine: Deploy is off, and the page says why.
    planner = admin.get("/planner").text
    assert "No Kubernetes cluster is configured" in planner
    assert "only an admin can deploy" not in planner


def test_deploy_is_off_until_a_cluster_is_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "HEARTH_PLANNER_KUBECONFIG",
        "HEARTH_PLANNER_KUBE_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    settings = {"data_dir": tmp_path / "data"}
    assert "No Kubernetes cluster is configured" in (deploy_blocker(Settings(**settings)) or "")
    assert deploy_blocker(Settings(**settings, planner_kube_api_url="https://k8s.example:6443")) is None
    missing = deploy_blocker(Settings(**settings, planner_kubeconfig=str(tmp_path / "nope")))
    assert missing is not None and "does not exist" in missing
    given = tmp_path / "kubeconfig"
    given.write_text("apiVersion: v1\n")
    assert deploy_blocker(Settings(**settings, planner_kubeconfig=str(given))) is None
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("apiVersion: v1\n")
    assert deploy_blocker(Settings(**settings)) is None  # kubectl's default, as the deploy finds it


def test_hanging_up_cancels_a_bench_run(server: tuple[RunningHearth, FakeOpenAI]) -> None:
    hearth, upstream = server
    h = hearth.headers()
    runs_before = len(httpx.get(f"{hearth.url}/api/bench/runs", headers=h).json())
    upstream.behaviour.chunk_delay = 0.3  # each request streams for ~1.5 s
    try:
        body = {"alias": "scripted", "concurrency": [4], "requests": 200}
        with httpx.stream("POST", f"{hearth.url}/api/bench/runs", json=body, headers=h, timeout=60) as sent:
            for line in sent.iter_lines():
                if line.startswith("event: progress"):
                    break  # requests are in flight: hang up, as the page's Stop button does
        # The server stops sending load (200 requests would take over a minute) and keeps no half run.

        def stopped() -> bool:
            sent_before = upstream.stats.requests
            time.sleep(1.0)  # longer than the gap between one request and the next of a worker
            return upstream.stats.active_streams == 0 and upstream.stats.requests == sent_before

        wait_until(stopped, 20, what="the run's load stopped")
        assert len(httpx.get(f"{hearth.url}/api/bench/runs", headers=h).json()) == runs_before
    finally:
        upstream.behaviour.chunk_delay = 0.0
