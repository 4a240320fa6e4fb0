"""The OpenAPI document and the docs pages, as a client generator, Swagger's "try it out" and a person
without a network use them (the fuzzing of every operation is in test_openapi_fuzz.py)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hearth.app import create_app
from hearth.config import Settings
from tests.harness import RunningHearth, run_hearth


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHearth]:
    with run_hearth(tmp_path_factory.mktemp("openapi")) as running:
        yield running


@pytest.fixture(scope="module")
def document(hearth: RunningHearth) -> dict[str, Any]:
    response = httpx.get(f"{hearth.url}/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_server_not_a_cdn(hearth: RunningHearth, page: str) -> None:
    html = httpx.get(f"{hearth.url}{page}")
    assert html.status_code == 200
    assert "text/html" in html.headers["content-type"]
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html.text)
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts, html.text
    assert not re.search(r"https?://", html.text), "a page of the docs names a remote URL"
    for url in urls:
        assert url.startswith("/"), url
        asset = httpx.get(f"{hearth.url}{url}")
        assert asset.status_code == 200, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"]
            assert len(asset.content) > 100_000  # the real bundle, not a stub
    assert "/openapi.json" in html.text


def test_every_authenticated_operation_declares_the_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["HTTPBearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    open_paths = {"/healthz", "/readyz", "/metrics"}
    for method, path, operation in operations(document):
        if path in open_paths:
            assert "security" not in operation, path
            continue
        assert operation.get("security") == [{"HTTPBearer": []}], f"{method} {path}"
        assert "401" in operation["responses"], f"{method} {path}"
    admin = document["paths"]["/api/admin/users"]["post"]["responses"]
    assert "403" in admin


def test_swagger_authorize_key_works_on_a_protected_route(hearth: RunningHearth) -> None:
    # What Swagger sends after "Authorize" with the HTTPBearer scheme: `Authorization: Bearer <key>`.
    assert httpx.get(f"{hearth.url}/api/me").status_code == 401
    me = httpx.get(f"{hearth.url}/api/me", headers={"Authorization": f"Bearer {hearth.admin_key}"})
    assert me.status_code == 200
    assert me.json()["user"]["role"] == "admin"


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", "ChatCompletionRequest"),
        ("/v1/embeddings", "EmbeddingRequest"),
        ("/v1/rerank", "RerankRequest"),
        ("/v1/audio/speech", "SpeechBody"),
        ("/api/voice", "VoiceRequestBody"),
        ("/api/rag/collections/{collection}/documents", "TextDocument"),
        ("/api/rag/collections/{collection}/documents/batch", "TextDocumentBatch"),
    ],
)
def test_routes_that_parse_their_own_body_publish_its_schema(
    document: dict[str, Any], path: str, model: str
) -> None:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    schema = document["components"]["schemas"][model]
    assert schema["properties"] and schema.get("required")
    for status in ("400", "413", "422"):
        error = document["paths"][path]["post"]["responses"][status]
        assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_errors_are_documented_in_the_shape_the_api_answers(
    hearth: RunningHearth, document: dict[str, Any]
) -> None:
    error = document["components"]["schemas"]["Error"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert error["required"] == ["error"]
    assert set(detail["required"]) == {"message", "type", "param", "code"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    # A real 422 and 404 match it.
    for response in (
        httpx.post(f"{hearth.url}/api/admin/users", json={"username": ""}, headers=hearth.headers()),
        httpx.get(f"{hearth.url}/api/rag/collections/none", headers=hearth.headers()),
    ):
        assert set(response.json()) == {"error"}
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_operation_ids_are_unique_and_path_parameters_declared(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns of a duplicate operation id
        document = app.openapi()
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    for method, path, operation in operations(document):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), f"{method} {path}"


def test_unsupported_method_is_a_client_error_naming_every_allowed_method(hearth: RunningHearth) -> None:
    options = httpx.request("OPTIONS", f"{hearth.url}/api/conversations", headers=hearth.headers())
    assert options.status_code == 405
    assert options.headers["allow"] == "GET, POST"
    assert options.json()["error"]["type"] == "invalid_request_error"
    assert options.json()["error"]["code"] == "method_not_allowed"
    put = httpx.put(f"{hearth.url}/api/rag/collections/x/documents", headers=hearth.headers())
    assert put.status_code == 405
    assert put.headers["allow"] == "GET, POST"
    # A fixed path beside a templated one (`/api/conversations/{id}` also matches it) names its own methods.
    search = httpx.request("OPTIONS", f"{hearth.url}/api/conversations/search?q=x", headers=hearth.headers())
    assert search.status_code == 405
    assert search.headers["allow"] == "GET"
    # The immutable messages say why, with the methods the path does answer.
    edit = httpx.patch(f"{hearth.url}/api/conversations/c1/messages", headers=hearth.headers())
    assert edit.status_code == 405
    assert edit.headers["allow"] == "GET, POST"
    assert edit.json()["error"]["code"] == "message_immutable"
    one = httpx.delete(f"{hearth.url}/api/conversations/c1/messages/m1", headers=hearth.headers())
    assert one.status_code == 405
    assert one.headers["allow"] == "GET"


def _aware(value: str) -> bool:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def test_timestamps_carry_their_offset(hearth: RunningHearth) -> None:
    headers = hearth.headers()
    user = httpx.post(f"{hearth.url}/api/admin/users", json={"username": "tz"}, headers=headers).json()
    key = httpx.post(f"{hearth.url}/api/admin/keys", json={"user": "tz"}, headers=headers).json()
    keys = httpx.get(f"{hearth.url}/api/admin/keys", headers=headers).json()["data"]
    session = httpx.post(f"{hearth.url}/api/sessions", json={"kind": "chat"}, headers=headers).json()
    collection = httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "tz"}, headers=headers).json()
    stamps = [
        user["created_at"],
        key["created_at"],
        *(k["created_at"] for k in keys),
        *(k["last_used_at"] for k in keys if k["last_used_at"]),
        session["started_at"],
        session["last_activity"],
        session["expires_at"],
        collection["created_at"],
    ]
    assert all(_aware(stamp) for stamp in stamps), stamps


def test_metadata_integers_beyond_64_bits_are_refused_not_a_server_error(hearth: RunningHearth) -> None:
    # Found by the fuzzer: orjson cannot write such an integer, and the size check crashed on it (500).
    headers = hearth.headers()
    httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "big"}, headers=headers)
    response = httpx.post(
        f"{hearth.url}/api/rag/collections/big/documents",
        content=b'{"text": "hello", "metadata": {"n": 18446744073709551616}}',
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "metadata"
    documents = httpx.get(f"{hearth.url}/api/rag/collections/big/documents", headers=headers).json()
    assert documents == []
