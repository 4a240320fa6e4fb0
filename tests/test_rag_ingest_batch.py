"""Bulk ingestion: many documents queued in one request and one transaction (`ingest_texts`, `ingest_files`,
`POST /api/rag/collections/{c}/documents/batch`), on the real service, embedder and server. One invalid item
refuses the whole request with a 4xx naming it, and nothing of the request is stored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from hearth.platform.errors import HearthError
from hearth.rag.schemas import TextDocument
from hearth.rag.service import RagService
from hearth.rag.uploads import FileUpload
from tests import test_rag_service as service_tests
from tests.harness import run_hearth
from tests.helpers import wait_indexed
from tests.test_rag_files import make_pdf
from tests.test_rag_service import EMBED_ONLY, _drain, _event_types

# The service fixtures (SQLite + LanceDB and PostgreSQL + Qdrant, real embedder) of the service tests.
gateway, rag, database = service_tests.gateway, service_tests.rag, service_tests.database

TEXTS = {
    "flutter.txt": "Flutter is a self-excited oscillation of a wing whose torsional stiffness is too low.",
    "slabs.txt": "Heat conduction in composite slabs is solved for layered media with contact resistance.",
    "suction.txt": "Suction through a porous wall delays the separation of a turbulent boundary layer.",
}


def _docs(texts: dict[str, str]) -> list[TextDocument]:
    return [
        TextDocument(text=text, source=source, metadata={"n": i})
        for i, (source, text) in enumerate(texts.items())
    ]


async def test_bulk_texts_queue_in_one_request_then_index_and_replace(rag: RagService, database):
    alice = rag.users["alice"]
    await rag.create_collection(user_id=alice, name="bulk")
    queued = await rag.ingest_texts(user_id=alice, collection="bulk", documents=_docs(TEXTS))
    assert [r.document.source for r in queued] == list(TEXTS)  # request order
    assert all(r.job.status == "pending" and not r.unchanged for r in queued)
    assert len({r.job.id for r in queued}) == 3
    assert (await _event_types(database)).count("DocumentIngestionRequested") == 3
    await _drain(rag)
    listed = await rag.list_documents(user_id=alice, collection="bulk")
    assert {d.status for d in listed} == {"indexed"} and all(d.queryable for d in listed)
    hits = await rag.retrieve(
        user_id=alice, collection="bulk", query="why does a wing flutter", mode="sparse"
    )
    assert hits[0].metadata["source"] == "flutter.txt"

    # The same request again changes nothing: no job, no event.
    again = await rag.ingest_texts(user_id=alice, collection="bulk", documents=_docs(TEXTS))
    assert all(r.unchanged for r in again)
    assert [r.job.id for r in again] == [r.job.id for r in queued]
    assert (await _event_types(database)).count("DocumentIngestionRequested") == 3

    # One changed, one new, two unchanged: only the first two queue jobs.
    changed = {
        **TEXTS,
        "flutter.txt": "Buffet is the shaking of a wing in separated flow.",
        "new.txt": "Ramjets.",
    }
    mixed = await rag.ingest_texts(user_id=alice, collection="bulk", documents=_docs(changed))
    assert [r.unchanged for r in mixed] == [False, True, True, False]
    assert mixed[0].document.id == queued[0].document.id  # the same document, a new version
    await _drain(rag)
    flutter = await rag.get_document(user_id=alice, document_id=queued[0].document.id)
    assert flutter.status == "indexed" and flutter.job_id == mixed[0].job.id
    hits = await rag.retrieve(
        user_id=alice, collection="bulk", query="buffet shaking separated flow", mode="sparse"
    )
    assert hits[0].document_id == flutter.id and "Buffet" in hits[0].text
    # Only the new version's chunks are left for the replaced document.
    collection_id = (await rag.get_collection(user_id=alice, collection="bulk")).id
    assert {v for d, v in rag.store.versions(collection_id) if d == flutter.id} == {mixed[0].job.id}


async def test_one_bad_item_refuses_the_whole_request(rag: RagService, database):
    alice, bob = rag.users["alice"], rag.users["bob"]
    await rag.create_collection(user_id=alice, name="strict")
    cases = [
        ({**TEXTS, "blank.txt": "   \n "}, 400, "documents.3.text", "empty"),
        ({**TEXTS, "../etc/passwd": "x"}, 400, "documents.3.source", "'..'"),
    ]
    for texts, status, param, words in cases:
        with pytest.raises(HearthError) as err:
            await rag.ingest_texts(user_id=alice, collection="strict", documents=_docs(texts))
        assert (err.value.status, err.value.param) == (status, param)
        assert words in err.value.message and err.value.message.startswith("documents[3]:")
    docs = _docs(TEXTS)
    with pytest.raises(HearthError) as err:
        await rag.ingest_texts(user_id=alice, collection="strict", documents=[*docs, docs[1]])
    assert (
        err.value.status == 400
        and err.value.code == "duplicate_source"
        and err.value.param == "documents.3.source"
    )
    files = [FileUpload("a.txt", b"alpha"), FileUpload("b.exe", b"MZ"), FileUpload("c.txt", b"gamma")]
    with pytest.raises(HearthError) as err:
        await rag.ingest_files(user_id=alice, collection="strict", files=files)
    assert (err.value.status, err.value.param) == (415, "files.1.file")
    with pytest.raises(HearthError) as err:
        await rag.ingest_texts(user_id=bob, collection="strict", documents=docs)
    assert err.value.status == 404
    # Nothing of any refused request was stored: no rows, no events, no files waiting for a job.
    assert await rag.list_documents(user_id=alice, collection="strict") == []
    assert "DocumentIngestionRequested" not in await _event_types(database)
    assert list(rag.uploads.iterdir()) == []

    queued = await rag.ingest_files(
        user_id=alice,
        collection="strict",
        files=[
            FileUpload("a.txt", b"alpha centauri"),
            FileUpload("p.pdf", make_pdf(["Shock tubes."]), "d/p.pdf"),
        ],
    )
    assert [r.document.source for r in queued] == ["a.txt", "d/p.pdf"]
    assert len(list(rag.uploads.iterdir())) == 2  # one file per pending job
    await _drain(rag)
    assert {d.status for d in await rag.list_documents(user_id=alice, collection="strict")} == {"indexed"}
    assert list(rag.uploads.iterdir()) == []


@pytest.fixture(scope="module")
def hearth(tmp_path_factory):
    with run_hearth(
        tmp_path_factory.mktemp("rag-batch"), {"include_defaults": False, **EMBED_ONLY}
    ) as server:
        yield server


def _uploads(hearth) -> list[Path]:
    return list((Path(hearth.settings.data_dir) / "rag" / "uploads").iterdir())


def test_batch_route_json(hearth):
    h = hearth.headers()
    assert httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "bj"}, headers=h).status_code == 201
    url = f"{hearth.url}/api/rag/collections/bj/documents/batch"
    docs = [{"text": t, "source": s, "title": s.split(".")[0]} for s, t in TEXTS.items()]

    missing = httpx.post(url, json={"documents": [docs[0], {"source": "x.txt"}]}, headers=h)
    assert missing.status_code == 422 and missing.json()["error"]["param"] == "documents.1.text"
    blank = httpx.post(url, json={"documents": [*docs, {"text": "  ", "source": "b.txt"}]}, headers=h)
    assert blank.status_code == 400 and blank.json()["error"]["param"] == "documents.3.text"
    assert httpx.post(url, json={"documents": []}, headers=h).status_code == 422
    too_many = [{"text": "x", "source": f"{i}.txt"} for i in range(1001)]
    assert httpx.post(url, json={"documents": too_many}, headers=h).status_code == 422
    assert httpx.post(url, content=b"{", headers={**h, "content-type": "application/json"}).status_code == 400
    assert httpx.post(url, content=b"x", headers={**h, "content-type": "text/plain"}).status_code == 415
    assert (
        httpx.post(
            f"{hearth.url}/api/rag/collections/nope/documents/batch", json={"documents": docs}, headers=h
        ).status_code
        == 404
    )
    # None of the refused requests left a document behind.
    assert httpx.get(f"{hearth.url}/api/rag/collections/bj/documents", headers=h).json() == []

    r = httpx.post(url, json={"documents": docs}, headers=h)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["queued"], body["unchanged"]) == (3, 0)
    assert [i["document"]["source"] for i in body["items"]] == list(TEXTS)
    assert all(i["job"]["status"] == "pending" for i in body["items"])
    listed = wait_indexed(hearth, "bj", 3)
    assert {d["status"] for d in listed} == {"indexed"}
    query = {
        "collection": "bj",
        "query": "porous wall suction separation",
        "generate": False,
        "rerank": False,
    }
    sources = httpx.post(f"{hearth.url}/api/rag/query", json=query, headers=h).json()["sources"]
    assert sources[0]["metadata"]["source"] == "suction.txt" and sources[0]["title"] == "suction"

    again = httpx.post(url, json={"documents": docs}, headers=h)
    assert again.status_code == 200 and (again.json()["queued"], again.json()["unchanged"]) == (0, 3)


def test_batch_route_multipart(hearth):
    h = hearth.headers()
    httpx.post(f"{hearth.url}/api/rag/collections", json={"name": "bm"}, headers=h).raise_for_status()
    url = f"{hearth.url}/api/rag/collections/bm/documents/batch"
    files = [
        ("file", ("a.txt", b"Compressor surge limits the pressure ratio.")),
        ("file", ("b.md", b"# Icing\n\nIce on rotor blades changes their lift.")),
        ("file", ("c.pdf", make_pdf(["Shock tubes measure reaction rates."]))),
    ]
    sources = {"source": ["x/a.txt", "x/b.md", "x/c.pdf"]}
    bad = httpx.post(url, files=[*files, ("file", ("d.exe", b"MZ"))], headers=h)
    assert bad.status_code == 415 and bad.json()["error"]["param"] == "files.3.file"
    empty = httpx.post(url, files=[*files, ("file", ("e.txt", b""))], headers=h)
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "files.3.file"
    mismatch = httpx.post(url, files=files, data={"source": ["only-one.txt"]}, headers=h)
    assert mismatch.status_code == 400 and mismatch.json()["error"]["param"] == "source"
    traversal = httpx.post(url, files=files, data={"source": ["x/a.txt", "../b.md", "x/c.pdf"]}, headers=h)
    assert traversal.status_code == 400 and traversal.json()["error"]["param"] == "files.1.source"
    assert httpx.get(f"{hearth.url}/api/rag/collections/bm/documents", headers=h).json() == []
    assert _uploads(hearth) == []

    r = httpx.post(url, files=files, data=sources, headers=h)
    assert r.status_code == 202, r.text
    assert [i["document"]["source"] for i in r.json()["items"]] == sources["source"]
    listed = wait_indexed(hearth, "bm", 3)
    assert {d["status"] for d in listed} == {"indexed"}
    query = {"collection": "bm", "query": "shock tube reaction rates", "generate": False, "rerank": False}
    top = httpx.post(f"{hearth.url}/api/rag/query", json=query, headers=h).json()["sources"][0]
    assert top["metadata"]["source"] == "x/c.pdf" and top["metadata"]["page"] == 1
    again = httpx.post(url, files=files, data=sources, headers=h)
    assert again.status_code == 200 and again.json()["unchanged"] == 3


def test_cli_ingest_sends_folders_in_bulk_and_skips_empty_files(hearth, tmp_path: Path):
    from typer.testing import CliRunner

    from hearth.cli.main import app as cli

    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(5):
        (folder / f"n{i}.txt").write_text(f"Note {i}: the nozzle throat area sets the mass flow {i}.")
    (folder / "empty.txt").write_bytes(b"")
    auth = ["--url", hearth.url, "--api-key", hearth.admin_key]
    result = CliRunner().invoke(cli, ["ingest", str(folder), "--collection", "cli-bulk", *auth])
    assert result.exit_code == 0, result.output
    assert "5 indexed" in result.output and "empty file" in result.output
    docs = httpx.get(f"{hearth.url}/api/rag/collections/cli-bulk/documents", headers=hearth.headers()).json()
    assert sorted(d["source"] for d in docs) == [f"notes/n{i}.txt" for i in range(5)]
