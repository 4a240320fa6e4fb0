"""RAG commands, HTTP clients of a running server: `hearth ingest`, `hearth ask`, `hearth rag load|eval`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hearth.cli.client_commands import KEY_OPTION, URL_OPTION, console, endpoint, fail_with
from hearth.cli.http import unreachable
from hearth.cli.main import app
from hearth.cli.models import fallback_notice
from hearth.cli.users import print_table
from hearth.rag import evaluation
from hearth.rag.extract import content_type_for

rag_app = typer.Typer(
    help="RAG collections: list, inspect, delete and share them; load a benchmark corpus and "
    "evaluate retrieval.",
    no_args_is_help=True,
)
app.add_typer(rag_app, name="rag")

COLLECTION_OPTION = typer.Option(..., "--collection", "-c", help="Collection name or id.")
_DONE = {"indexed", "failed"}


class Client:
    """A small HTTP client that turns transport errors and error responses into clean CLI exits."""

    def __init__(self, url: str | None, api_key: str | None, timeout: float = 60) -> None:
        self.base, headers = endpoint(url, api_key)
        self.http = httpx.Client(
            base_url=self.base, headers=headers, timeout=httpx.Timeout(timeout, read=600)
        )

    def request(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202, 204), **kwargs: Any
    ) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(exc) from None
        if response.status_code not in ok:
            fail_with(response)
        return response

    def ensure_collection(self, name: str) -> dict[str, Any]:
        response = self.request("GET", f"/api/rag/collections/{name}", ok=(200, 404))
        if response.status_code == 200:
            return response.json()
        console.print(f"creating collection [bold]{name}[/]")
        return self.request("POST", "/api/rag/collections", json={"name": name}).json()

    def wait_indexed(
        self, collection_id: str, document_ids: set[str], progress: Progress | None
    ) -> dict[str, dict]:
        """Poll the collection's documents until every one of `document_ids` is indexed or failed."""
        task = progress.add_task("indexing", total=len(document_ids)) if progress else None
        while True:
            docs: dict[str, dict] = {}
            offset = 0
            while True:
                page = self.request(
                    "GET",
                    f"/api/rag/collections/{collection_id}/documents",
                    params={"limit": 10000, "offset": offset},
                ).json()
                docs.update({d["id"]: d for d in page if d["id"] in document_ids})
                if len(page) < 10000:
                    break
                offset += len(page)
            done = sum(1 for d in docs.values() if d["status"] in _DONE)
            if progress is not None and task is not None:
                progress.update(task, completed=done)
            if done >= len(document_ids):
                return docs
            time.sleep(0.5)


def _files(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, source name) for each supported file; folders are walked recursively."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if content_type_for(child.name):
                    found.append((child, child.relative_to(path.parent).as_posix()))
        elif path.is_file():
            if not content_type_for(path.name):
                typer.secho(f"skipping {path}: unsupported type", fg="yellow", err=True)
                continue
            found.append((path, path.name))
        else:
            raise typer.BadParameter(f"{path} does not exist", param_hint="PATH")
    return found


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _report(docs: dict[str, dict], unchanged: int) -> None:
    indexed = [d for d in docs.values() if d["status"] == "indexed"]
    failed = [d for d in docs.values() if d["status"] == "failed"]
    console.print(
        f"{len(indexed)} indexed ({sum(d['chunk_count'] for d in indexed)} chunks), "
        f"{unchanged} unchanged, {len(failed)} failed"
    )
    for d in failed:
        typer.secho(f"  failed {d['source']}: {d['error']}", fg="red", err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(
        ..., help="Files or folders (walked recursively): txt, md, html, pdf, docx."
    ),
    collection: str = COLLECTION_OPTION,
    wait: bool = typer.Option(True, help="Wait until every document is indexed or failed."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Upload documents into a collection (created if missing) and follow their ingestion."""
    files = _files(paths)
    for path, _source in [f for f in files if f[0].stat().st_size == 0]:
        # The server refuses an empty file (400), which would refuse its whole batch: skip it here.
        typer.secho(f"skipping {path}: empty file", fg="yellow", err=True)
    files = [f for f in files if f[0].stat().st_size > 0]
    if not files:
        raise typer.BadParameter("no supported files found", param_hint="PATH")
    client = Client(url, api_key)
    target = client.ensure_collection(collection)
    documents: set[str] = set()
    unchanged = 0
    with _progress() as progress:
        task = progress.add_task("uploading", total=len(files))
        # Files go in batches, one request (one server transaction) each: queueing documents one request at
        # a time costs the server CPU that its embedder, working the queue meanwhile, needs.
        for batch in _batches(files, size=lambda f: f[0].stat().st_size):
            handles = [path.open("rb") for path, _source in batch]
            try:
                response = client.request(
                    "POST",
                    f"/api/rag/collections/{target['id']}/documents/batch",
                    files=[("file", (path.name, h)) for (path, _), h in zip(batch, handles, strict=True)],
                    data={"source": [source for _, source in batch]},
                )
            finally:
                for h in handles:
                    h.close()
            for item in response.json()["items"]:
                if item["unchanged"]:
                    unchanged += 1
                else:
                    documents.add(item["document"]["id"])
            progress.advance(task, len(batch))
        docs = client.wait_indexed(target["id"], documents, progress) if wait and documents else {}
    _report(docs, unchanged)


_BATCH_ITEMS = 200  # documents per bulk request
_BATCH_BYTES = 16 * 1024 * 1024  # and about this many bytes (well under the server's upload cap)


def _batches(items: list[Any], size: Any) -> Iterator[list[Any]]:
    """Consecutive groups of at most `_BATCH_ITEMS` items and about `_BATCH_BYTES` (a bigger item goes
    alone)."""
    batch: list[Any] = []
    total = 0
    for item in items:
        n = size(item)
        if batch and (len(batch) >= _BATCH_ITEMS or total + n > _BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += n
    if batch:
        yield batch


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question."),
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="Collection name or id (optional with --agent router)."
    ),
    agent: str | None = typer.Option(
        None,
        "--agent",
        help="Answer through an agent: 'router' classifies the question, answers from the collection or "
        "directly, has the answer judged and retries once below the threshold (streams its steps).",
    ),
    mode: str | None = typer.Option(None, help="dense, sparse or hybrid (default: the server's)."),
    top_k: int = typer.Option(10, help="Candidates retrieved."),
    top_n: int = typer.Option(3, help="Sources kept after reranking."),
    generate: bool = typer.Option(True, help="Answer with the chat model (else show the sources only)."),
    max_tokens: int = typer.Option(512, help="Most tokens in the answer."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Ask a question about a collection: a cited answer, then its sources (or, with --agent router, the
    query router's judged answer)."""
    client = Client(url, api_key)
    if agent is not None:
        if agent != "router":
            raise typer.BadParameter(
                "the only agent is 'router' (for the crew: hearth crew)", param_hint="--agent"
            )
        from hearth.cli.agents import ask_router

        ask_router(
            client,
            question,
            collection=collection,
            mode=mode,
            top_k=top_k,
            top_n=top_n,
            max_tokens=max_tokens,
        )
        return
    if collection is None:
        raise typer.BadParameter(
            "name the collection to ask (or use --agent router)", param_hint="--collection"
        )
    body = {
        "collection": collection,
        "query": question,
        "mode": mode,
        "top_k": top_k,
        "top_n": top_n,
        "generate": generate,
        "max_tokens": max_tokens,
    }
    result = client.request("POST", "/api/rag/query", json=body).json()
    fallback_notice(result)
    if result.get("answer_mode") == "extractive_fallback":
        typer.secho(
            f"(the model's answer was not grounded in the sources: {result.get('answer_note')}; "
            "here are the sources' best sentences instead)",
            fg="yellow",
            err=True,
        )
    if result["answer"] is not None:
        console.print(result["answer"], markup=False, highlight=False)
        console.print()
    for i, source in enumerate(result["sources"], 1):
        meta = source["metadata"]
        where = meta.get("source", source["document_id"]) + (
            f", page {meta['page']}" if "page" in meta else ""
        )
        rerank = f", rerank {source['rerank_score']:.3f}" if source["rerank_score"] is not None else ""
        console.print(f"[bold][{i}][/] {source['title']} ({where}; score {source['score']:.3f}{rerank})")
        console.print("    " + source["text"][:300].replace("\n", " "), markup=False, highlight=False)
    latency = ", ".join(f"{k} {v:.0f} ms" for k, v in result["latency_ms"].items())
    console.print(f"[dim]{result['mode']}: {latency}[/]")


@rag_app.command("load")
def load(
    corpus: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Corpus file (cran.all.1400, corpus.jsonl)."
    ),
    collection: str = COLLECTION_OPTION,
    fmt: str = typer.Option("smart", "--format", help="smart or beir."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Ingest a benchmark corpus through the ingest API, one document per record (source = its id)."""
    docs = evaluation.load_corpus(corpus, fmt)
    client = Client(url, api_key)
    target = client.ensure_collection(collection)
    documents: set[str] = set()
    unchanged = 0
    with _progress() as progress:
        task = progress.add_task("sending", total=len(docs))
        bodies = []
        for doc in docs:
            if not (doc.text or doc.title).strip():
                typer.secho(f"skipping record {doc.id}: it has no text", fg="yellow", err=True)
                progress.advance(task)
                continue
            bodies.append({"text": doc.text or doc.title, "title": doc.title or None, "source": doc.id})
        # Bulk requests: one server transaction per batch instead of one per document.
        for batch in _batches(bodies, size=lambda b: len(b["text"]) * 4):
            result = client.request(
                "POST",
                f"/api/rag/collections/{target['id']}/documents/batch",
                json={"documents": batch},
            ).json()
            for item in result["items"]:
                if item["unchanged"]:
                    unchanged += 1
                else:
                    documents.add(item["document"]["id"])
            progress.advance(task, len(batch))
        indexed = client.wait_indexed(target["id"], documents, progress) if documents else {}
    _report(indexed, unchanged)


# What a new user sends: the collection and the question, everything else left to the server's defaults,
# except ten sources (nDCG@10 needs ten) and no generated answer (retrieval is what is measured).
AS_USER_SOURCES = 10


def as_user_request(collection: str, query: str) -> dict[str, Any]:
    """The default query request `--as-user` sends."""
    return {"collection": collection, "query": query, "top_n": AS_USER_SOURCES, "generate": False}


def evaluated_request(collection: str, query: str, mode: str, depth: int) -> dict[str, Any]:
    """The evaluated path: one mode, `depth` fused chunks, no rerank."""
    return {
        "collection": collection,
        "query": query,
        "mode": mode,
        "top_k": depth,
        "top_n": depth,
        "rerank": False,
        "generate": False,
    }


def run_queries(
    client: Client, judged: dict[str, str], body: Any, progress: Progress, label: str
) -> tuple[dict[str, list[str]], list[float]]:
    """Each query through `POST /api/rag/query` (body(text) is its request): the documents of its sources
    in order, and each request's round trip in milliseconds."""
    task = progress.add_task(label, total=len(judged))
    runs: dict[str, list[str]] = {}
    timings: list[float] = []
    for qid, text in judged.items():
        started = time.perf_counter()
        sources = client.request("POST", "/api/rag/query", json=body(text)).json()["sources"]
        timings.append((time.perf_counter() - started) * 1000)
        runs[qid] = evaluation.documents_in_order(
            s["metadata"].get("source", s["document_id"]) for s in sources
        )
        progress.advance(task)
    return runs, timings


@rag_app.command("eval")
def evaluate(
    collection: str = COLLECTION_OPTION,
    queries: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="Queries (cran.qry, queries.jsonl, topics)."
    ),
    qrels: Path = typer.Option(..., exists=True, dir_okay=False, help="Relevance judgements."),
    fmt: str = typer.Option("smart", "--format", help="beir, trec or smart."),
    modes: str = typer.Option("dense,sparse,hybrid", help="Comma-separated retrieval modes."),
    depth: int = typer.Option(100, help="Chunks retrieved per query (Recall@100 needs 100 documents)."),
    as_user: bool = typer.Option(
        False,
        "--as-user",
        help="Also send the default request a new user sends (collection and query only; top_n 10, no "
        "answer) and print it beside the evaluated modes, with query latency.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """nDCG@10, Recall@100 and MRR@10 per retrieval mode, through the same query API users call."""
    if fmt not in evaluation.FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(evaluation.FORMATS)}", param_hint="--format")
    topics = evaluation.load_queries(queries, fmt)
    judgements = evaluation.load_qrels(qrels, fmt)
    judged = {q: t for q, t in topics.items() if judgements.get(q)}
    if not judged:
        raise typer.BadParameter("no query has relevance judgements: check --format", param_hint="--qrels")
    client = Client(url, api_key)
    results: dict[str, evaluation.Scores] = {}
    latency: dict[str, float] = {}
    with _progress() as progress:
        if as_user:
            runs, timings = run_queries(
                client, judged, lambda text: as_user_request(collection, text), progress, "as user"
            )
            results["as user (default request)"] = evaluation.score(runs, judgements)
            latency["as user (default request)"] = statistics.median(timings)
        for mode in [m.strip() for m in modes.split(",") if m.strip()]:
            runs, timings = run_queries(
                client,
                judged,
                lambda text, mode=mode: evaluated_request(collection, text, mode, depth),
                progress,
                mode,
            )
            name = f"{mode}, rerank off, {depth}" if as_user else mode
            results[name] = evaluation.score(runs, judgements)
            latency[name] = statistics.median(timings)
    if as_json:
        typer.echo(
            orjson.dumps(
                {m: {**s.__dict__, "p50_ms": round(latency[m], 2)} for m, s in results.items()}
            ).decode()
        )
        return
    table = Table(
        "request",
        "nDCG@10",
        "Recall@100",
        "MRR@10",
        "queries",
        "p50 ms",
        title=f"retrieval on {collection}",
    )
    for name, s in results.items():
        # The default request returns 10 sources: its Recall@100 is Recall@10 at most.
        recall = "—" if name.startswith("as user") else f"{s.recall100:.4f}"
        table.add_row(
            name, f"{s.ndcg10:.4f}", recall, f"{s.mrr10:.4f}", str(s.queries), f"{latency[name]:.1f}"
        )
    console.print(table)


@rag_app.command("collections")
def collections(url: str | None = URL_OPTION, api_key: str | None = KEY_OPTION) -> None:
    """The collections you own and those shared with you."""
    client = Client(url, api_key)
    items = client.request("GET", "/api/rag/collections").json()
    table = Table("Name", "ID", "Documents", "Owner", "Shared with")
    table.columns[1].no_wrap = True
    for c in items:
        table.add_row(
            c["name"],
            c["id"],
            str(c["document_count"]),
            "you" if c["owned"] else "shared with you",
            ", ".join(c["shared_with"]) or "-",
        )
    print_table(table)


def _documents(client: Client, collection: str) -> list[dict]:
    docs: list[dict] = []
    while True:
        page = client.request(
            "GET",
            f"/api/rag/collections/{collection}/documents",
            params={"limit": 10000, "offset": len(docs)},
        ).json()
        docs += page
        if len(page) < 10000:
            return docs


@rag_app.command("documents")
def documents(
    collection: str = typer.Argument(..., help="Collection name or id."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """A collection's documents: file, status, chunks."""
    client = Client(url, api_key)
    table = Table("Source", "ID", "Status", "Chunks", "Error")
    table.columns[1].no_wrap = True
    for d in _documents(client, collection):
        table.add_row(d["source"], d["id"], d["status"], str(d["chunk_count"]), d["error"] or "")
    print_table(table)


@rag_app.command("delete")
def delete(
    collection: str = typer.Argument(..., help="Collection name or id."),
    document: str | None = typer.Option(
        None, "--document", "-d", help="Delete only this document (its source file name or id)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Delete a collection (its documents and their chunks), or one document of it."""
    client = Client(url, api_key)
    if document is None:
        target = client.request("GET", f"/api/rag/collections/{collection}").json()
        if not yes:
            typer.confirm(
                f"Delete collection {target['name']} and its {target['document_count']} documents?",
                abort=True,
            )
        client.request("DELETE", f"/api/rag/collections/{target['id']}")
        console.print(f"deleted collection {target['name']}", highlight=False)
        return
    docs = _documents(client, collection)
    matches = [d for d in docs if document in (d["id"], d["source"])]
    if not matches:
        typer.secho(
            f"error: no document {document!r} in {collection}; see `hearth rag documents {collection}`",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    if not yes:
        typer.confirm(f"Delete {len(matches)} document(s) named {document} from {collection}?", abort=True)
    for d in matches:
        client.request("DELETE", f"/api/rag/documents/{d['id']}")
        console.print(f"deleted {d['source']} ({d['id']})", highlight=False)


@rag_app.command("share")
def share(
    collection: str = typer.Argument(..., help="Collection name or id (yours)."),
    username: str = typer.Argument(..., help="The user to share it with, read-only."),
    remove: bool = typer.Option(False, "--remove", help="Withdraw the share instead."),
    url: str | None = URL_OPTION,
    api_key: str | None = KEY_OPTION,
) -> None:
    """Share a collection read-only with another user (or withdraw the share)."""
    client = Client(url, api_key)
    if remove:
        result = client.request("DELETE", f"/api/rag/collections/{collection}/shares/{username}").json()
    else:
        result = client.request(
            "POST", f"/api/rag/collections/{collection}/shares", json={"username": username}
        ).json()
    shared = ", ".join(result["shared_with"]) or "nobody"
    console.print(f"{result['name']} is shared with: {shared}", highlight=False)
