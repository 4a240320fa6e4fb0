"""The bad-input corpus: every request a careless user or an attacker sent in issue 20 and the issues before
it (corrupt and hostile files, empty and huge input, wrong types, hostile names, another user's ids, numbers
past the database's range, over-size bodies), against a real server. Each must get a clear 4xx in the API's
error shape, and none may store anything: no document, no job, no ingestion event, no file waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hearth.events.models import OutboxEvent
from hearth.platform.db import Database
from hearth.rag.models import Document, IngestJob
from tests.fake_openai import FakeOpenAI
from tests.harness import RunningHearth, run_hearth
from tests.helpers import wait_indexed
from tests.test_rag_files import make_docx, make_docx_bomb, make_lying_docx_bomb, make_pdf

UPLOAD_CAP = 6 * 1024 * 1024  # the document routes' body cap on this server (a 2M-character text fits)


@dataclass
class Corpus:
    hearth: RunningHearth
    bob: str  # another user's key
    private: dict[str, Any]  # the admin's indexed document (and its job) in collection "private"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return self.hearth.headers(key)

    def url(self, path: str) -> str:
        return f"{self.hearth.url}{path}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    upstream = FakeOpenAI().start()
    config = {
        "include_defaults": False,
        "backends": {"up": {"type": "openai", "base_url": upstream.url}},
        "aliases": {
            "embedder": {"kind": "embedding", "deployments": [{"backend": "up", "model": "m"}]},
            "chat": {"kind": "chat", "deployments": [{"backend": "up", "model": "m"}]},
        },
    }
    try:
        with run_hearth(tmp_path_factory.mktemp("corpus"), config, max_upload_bytes=UPLOAD_CAP) as hearth:
            h = hearth.headers()
            base = f"{hearth.url}/api"
            httpx.post(f"{base}/admin/users", json={"username": "bob"}, headers=h).raise_for_status()
            bob = httpx.post(f"{base}/admin/keys", json={"user": "bob", "name": "k"}, headers=h).json()["key"]
            for name in ("inbox", "private"):
                httpx.post(f"{base}/rag/collections", json={"name": name}, headers=h).raise_for_status()
            posted = httpx.post(
                f"{base}/rag/collections/private/documents",
                json={"text": "Ramjets compress air by their speed alone.", "source": "ramjet.txt"},
                headers=h,
            ).json()
            wait_indexed(hearth, "private", 1)
            yield Corpus(hearth, bob, posted)
    finally:
        upstream.stop()


def _stored(hearth: RunningHearth) -> tuple[int, int, int, int]:
    """Documents, jobs, document events in the outbox, files waiting in the upload folder."""

    async def count() -> tuple[int, int, int]:
        db = Database(hearth.settings.resolved_database_url)
        try:
            async with db.transaction() as session:
                documents = await session.scalar(select(func.count()).select_from(Document))
                jobs = await session.scalar(select(func.count()).select_from(IngestJob))
                events = await session.scalar(
                    select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type.like("Document%"))
                )
                return documents or 0, jobs or 0, events or 0
        finally:
            await db.close()

    uploads = Path(hearth.settings.data_dir) / "rag" / "uploads"
    return (*asyncio.run(count()), len(list(uploads.iterdir())))


def _upload(c: Corpus, filename: str, data: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        c.url("/api/rag/collections/inbox/documents"),
        files={"file": (filename, data)},
        data=fields,
        headers=c.headers(),
    )


def _text(c: Corpus, body: Any, collection: str = "inbox", key: str | None = None) -> httpx.Response:
    return httpx.post(
        c.url(f"/api/rag/collections/{collection}/documents"), json=body, headers=c.headers(key)
    )


def _raw(c: Corpus, path: str, content: bytes) -> httpx.Response:
    headers = {**c.headers(), "content-type": "application/json"}
    return httpx.post(c.url(path), content=content, headers=headers)


def _embed(c: Corpus, body: Any) -> httpx.Response:
    return httpx.post(c.url("/v1/embeddings"), json=body, headers=c.headers(), timeout=60)


def _batch(c: Corpus, body: Any) -> httpx.Response:
    return httpx.post(c.url("/api/rag/collections/inbox/documents/batch"), json=body, headers=c.headers())


def _chunked(c: Corpus, size: int) -> httpx.Response:
    """A valid multipart upload of `size` bytes sent without a Content-Length (chunked)."""

    def body():
        yield b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        for _ in range(size // 65536 + 1):
            yield b"x" * 65536
        yield b"\r\n--zz--\r\n"

    headers = {**c.headers(), "content-type": "multipart/form-data; boundary=zz"}
    return httpx.post(c.url("/api/rag/collections/inbox/documents"), content=body(), headers=headers)


BIG = 2**63
# (id, request, status, error code or param the response must name)
CASES: list[tuple[str, Callable[[Corpus], httpx.Response], int, str]] = [
    # Issue 20, row 7: files that cannot be read are refused up front.
    ("corrupt pdf", lambda c: _upload(c, "x.pdf", b"%PDF-1.7 garbage"), 422, "unreadable_file"),
    ("pdf that is no pdf", lambda c: _upload(c, "x.pdf", b"hello, world"), 422, "unreadable_file"),
    ("locked pdf", lambda c: _upload(c, "x.pdf", make_pdf(["s"], password="pw")), 422, "unreadable_file"),
    ("docx zip bomb", lambda c: _upload(c, "b.docx", make_docx_bomb()), 422, "unreadable_file"),
    ("docx lying bomb", lambda c: _upload(c, "b.docx", make_lying_docx_bomb()), 422, "unreadable_file"),
    ("docx not a zip", lambda c: _upload(c, "b.docx", b"PK\x03\x04 truncated"), 422, "unreadable_file"),
    ("docx truncated", lambda c: _upload(c, "b.docx", make_docx(["a"])[:-40]), 422, "unreadable_file"),
    ("unsupported type", lambda c: _upload(c, "a.exe", b"MZ\x90\x00"), 415, "unsupported_type"),
    ("empty file", lambda c: _upload(c, "a.txt", b""), 400, "empty_file"),
    (
        "no file field",
        lambda c: httpx.post(
            c.url("/api/rag/collections/inbox/documents"),
            files={"other": ("a.txt", b"x")},
            headers=c.headers(),
        ),
        400,
        "file",
    ),
    # Hostile names.
    ("traversal filename", lambda c: _upload(c, "../../etc/passwd", b"root"), 400, "invalid_name"),
    ("traversal source", lambda c: _upload(c, "a.txt", b"x", source="../../etc/passwd"), 400, "invalid_name"),
    ("absolute source", lambda c: _text(c, {"text": "x", "source": "/etc/passwd"}), 400, "invalid_name"),
    ("drive source", lambda c: _text(c, {"text": "x", "source": "C:\\boot.ini"}), 400, "invalid_name"),
    ("NUL in source", lambda c: _text(c, {"text": "x", "source": "a\x00.txt"}), 400, "invalid_name"),
    ("control in source", lambda c: _text(c, {"text": "x", "source": "a\x1b.txt"}), 400, "invalid_name"),
    # Empty and huge input, wrong types.
    ("blank text", lambda c: _text(c, {"text": " \n\t "}), 400, "empty_file"),
    ("empty text", lambda c: _text(c, {"text": ""}), 422, "text"),
    ("text over 2M chars", lambda c: _text(c, {"text": "a" * 2_000_001}), 422, "text"),
    (
        "metadata over 16 KiB",
        lambda c: _text(c, {"text": "x", "metadata": {"k": "v" * 17000}}),
        422,
        "metadata",
    ),
    ("text not a string", lambda c: _text(c, {"text": 12}), 422, "text"),
    ("metadata not an object", lambda c: _text(c, {"text": "x", "metadata": "k=v"}), 422, "metadata"),
    ("unknown field", lambda c: _text(c, {"text": "x", "owner": "bob"}), 422, "owner"),
    ("body not an object", lambda c: _text(c, ["text"]), 422, "invalid_value"),
    (
        "invalid json",
        lambda c: _raw(c, "/api/rag/collections/inbox/documents", b'{"text": '),
        400,
        "invalid_json",
    ),
    (
        "lone surrogate",
        lambda c: _raw(c, "/api/rag/collections/inbox/documents", b'{"text": "bad \\ud800 half"}'),
        400,
        "invalid_json",
    ),
    ("batch not a list", lambda c: _batch(c, {"documents": "x"}), 422, "documents"),
    ("batch empty", lambda c: _batch(c, {"documents": []}), 422, "documents"),
    (
        "batch one bad",
        lambda c: _batch(
            c, {"documents": [{"text": "fine", "source": "a.txt"}, {"text": "x", "source": "../b"}]}
        ),
        400,
        "documents.1.source",
    ),
    (
        "wrong media type",
        lambda c: httpx.post(
            c.url("/api/rag/collections/inbox/documents"),
            content=b"x",
            headers={**c.headers(), "content-type": "text/plain"},
        ),
        415,
        "unsupported_media_type",
    ),
    # Over-size bodies, with a length and chunked (issue 20, row 6).
    ("body over the cap", lambda c: _upload(c, "a.txt", b"a" * (UPLOAD_CAP + 1)), 413, "request_too_large"),
    ("chunked body over the cap", lambda c: _chunked(c, UPLOAD_CAP + 1), 413, "request_too_large"),
    # Another user's ids: the same 404 as ids that do not exist.
    (
        "other's collection",
        lambda c: httpx.get(c.url("/api/rag/collections/private"), headers=c.headers(c.bob)),
        404,
        "collection",
    ),
    ("post to other's collection", lambda c: _text(c, {"text": "x"}, "private", c.bob), 404, "collection"),
    (
        "other's document",
        lambda c: httpx.get(
            c.url(f"/api/rag/documents/{c.private['document']['id']}"), headers=c.headers(c.bob)
        ),
        404,
        "document",
    ),
    (
        "delete other's document",
        lambda c: httpx.delete(
            c.url(f"/api/rag/documents/{c.private['document']['id']}"), headers=c.headers(c.bob)
        ),
        404,
        "document",
    ),
    (
        "other's job",
        lambda c: httpx.get(c.url(f"/api/rag/jobs/{c.private['job']['id']}"), headers=c.headers(c.bob)),
        404,
        "job",
    ),
    (
        "delete other's collection",
        lambda c: httpx.delete(c.url("/api/rag/collections/private"), headers=c.headers(c.bob)),
        404,
        "collection",
    ),
    # Numbers past the database's range (issue 20, row 4).
    (
        "offset past bigint",
        lambda c: httpx.get(c.url(f"/api/rag/collections/inbox/documents?offset={BIG}"), headers=c.headers()),
        422,
        "offset",
    ),
    (
        "conversations offset",
        lambda c: httpx.get(c.url(f"/api/conversations?offset={BIG}"), headers=c.headers()),
        422,
        "offset",
    ),
    (
        "limit zero",
        lambda c: httpx.get(c.url("/api/rag/collections/inbox/documents?limit=0"), headers=c.headers()),
        422,
        "limit",
    ),
    # /v1/embeddings: huge input is refused with the limit named (issue 20, row 7).
    (
        "embedding input 2M chars",
        lambda c: _embed(c, {"model": "embedder", "input": "a" * 2_000_000}),
        400,
        "input_too_long",
    ),
    (
        "embedding inputs over 1 MiB in all",
        lambda c: _embed(c, {"model": "embedder", "input": ["a" * 30_000] * 40}),
        400,
        "input_too_long",
    ),
    ("embedding empty list", lambda c: _embed(c, {"model": "embedder", "input": []}), 422, "input"),
    ("embedding input a number", lambda c: _embed(c, {"model": "embedder", "input": 5}), 422, "input"),
    ("embedding unknown model", lambda c: _embed(c, {"model": "nope", "input": "x"}), 404, "model_not_found"),
    (
        "chat without messages",
        lambda c: httpx.post(
            c.url("/v1/chat/completions"), json={"model": "chat", "messages": []}, headers=c.headers()
        ),
        422,
        "messages",
    ),
    (
        "chat huge max_tokens type",
        lambda c: httpx.post(
            c.url("/v1/chat/completions"),
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": "lots"},
            headers=c.headers(),
        ),
        422,
        "max_tokens",
    ),
]


@pytest.mark.parametrize(("name", "send", "status", "names"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_4xx_and_stores_nothing(corpus: Corpus, name, send, status, names):
    before = _stored(corpus.hearth)
    response = send(corpus)
    assert response.status_code == status, (name, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"] and error["type"] in (
        "invalid_request_error",
        "not_found_error",
        "request_too_large",
    ), error
    assert names in (error["code"], error["param"]) or names in (error["param"] or ""), error
    assert _stored(corpus.hearth) == before  # no document, job, event or waiting file
