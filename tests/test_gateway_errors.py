"""Bad input: each a clear error in OpenAI's shape, and the server unharmed afterwards."""

from __future__ import annotations

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.harness import remote_config, run_hearth


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):
    upstream = FakeOpenAI().start()
    tmp = tmp_path_factory.mktemp("errors")
    with run_hearth(
        tmp, remote_config((upstream.url, {})), max_request_bytes=1_000_000, max_upload_bytes=2_000_000
    ) as server:
        yield server
    upstream.stop()


def post(
    hearth, body: bytes | dict, key: str | None = None, path: str = "/chat/completions"
) -> httpx.Response:
    headers = hearth.headers(key)
    if isinstance(body, bytes):
        return httpx.post(
            f"{hearth.v1}{path}", content=body, headers={**headers, "Content-Type": "application/json"}
        )
    return httpx.post(f"{hearth.v1}{path}", json=body, headers=headers)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


GOOD = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        ({"model": "chat"}, 422, "invalid_value"),
        ({"model": "chat", "messages": []}, 422, "invalid_value"),
        ({"model": "chat", "messages": "hello"}, 422, "invalid_value"),
        ({"model": "chat", "messages": [{"role": "wizard", "content": "x"}]}, 422, "invalid_value"),
        ({**GOOD, "temperature": "hot"}, 422, "invalid_value"),
        ({**GOOD, "temperature": 9}, 422, "invalid_value"),
        ({**GOOD, "max_tokens": 0}, 422, "invalid_value"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 422, "invalid_value"),
        ({**GOOD, "model": "no-such-model"}, 404, "model_not_found"),
    ],
)
def test_bad_chat_requests(hearth, body, status, code):
    error = assert_error(post(hearth, body), status, code)
    if status == 422:
        assert error["param"]


def test_wrong_type_names_the_field(hearth):
    error = assert_error(post(hearth, {**GOOD, "temperature": "hot"}), 422)
    assert error["param"] == "temperature"


def test_unknown_model_lists_where_to_look(hearth):
    error = assert_error(post(hearth, {**GOOD, "model": "gpt-9"}), 404)
    assert "gpt-9" in error["message"] and error["param"] == "model"


def test_too_large_body_is_413(hearth):
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 1_200_000}]}
    assert_error(post(hearth, big), 413, "request_too_large")


def test_upload_routes_have_their_own_larger_cap(hearth):
    url = f"{hearth.v1}/audio/transcriptions"
    files = {"file": ("a.wav", b"\0" * 1_200_000, "audio/wav")}
    over_json_cap = httpx.post(url, files=files, data={"model": "stt"}, headers=hearth.headers())
    # Over the JSON cap but under the upload cap: read whole and judged on its content.
    assert_error(over_json_cap, 400, "invalid_audio")
    files = {"file": ("a.wav", b"\0" * 2_100_000, "audio/wav")}
    error = assert_error(httpx.post(url, files=files, headers=hearth.headers()), 413, "request_too_large")
    assert "2000000" in error["message"]


def test_missing_malformed_and_unknown_keys_are_401(hearth):
    r = httpx.post(f"{hearth.v1}/chat/completions", json=GOOD)
    assert_error(r, 401, "missing_api_key")
    r = httpx.post(f"{hearth.v1}/chat/completions", json=GOOD, headers={"Authorization": "Basic abc"})
    assert_error(r, 401)
    assert_error(post(hearth, GOOD, key="hk-" + "x" * 40), 401, "invalid_api_key")


def test_revoked_key_is_401_and_user_key_on_admin_route_is_403(hearth):
    admin = hearth.headers()
    r = httpx.post(f"{hearth.url}/api/admin/users", json={"username": "mallory"}, headers=admin)
    assert r.status_code == 201, r.text
    r = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "mallory"}, headers=admin)
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    assert post(hearth, GOOD, key=key).status_code == 200
    r = httpx.get(f"{hearth.url}/api/admin/keys", headers=hearth.headers(key))
    assert_error(r, 403, "admin_required")
    r = httpx.post(
        f"{hearth.url}/api/admin/users",
        json={"username": "evil", "role": "admin"},
        headers=hearth.headers(key),
    )
    assert_error(r, 403, "admin_required")
    revoked = httpx.delete(f"{hearth.url}/api/admin/keys/{key_id}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
    assert_error(post(hearth, GOOD, key=key), 401, "invalid_api_key")


def test_embeddings_and_rerank_input_errors(hearth):
    assert_error(post(hearth, {"model": "chat", "input": []}, path="/embeddings"), 422)
    assert_error(post(hearth, {"model": "chat", "input": 42}, path="/embeddings"), 422)
    assert_error(post(hearth, {"model": "chat", "query": "", "documents": ["a"]}, path="/rerank"), 422)
    assert_error(post(hearth, {"model": "chat", "query": "q", "documents": []}, path="/rerank"), 422)


def test_server_is_unharmed(hearth):
    assert post(hearth, GOOD).status_code == 200
    assert httpx.get(f"{hearth.url}/healthz").json() == {"status": "ok"}
    r = httpx.get(f"{hearth.url}/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "models": "ok"}
