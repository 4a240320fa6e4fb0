"""Retrieval evaluation: corpora, queries and relevance judgements in BEIR, TREC and SMART formats, and the
metrics nDCG@10 (linear gains, as trec_eval and BEIR compute it), Recall@100 and MRR@10.

SMART (Cranfield): `.I`/`.T`/`.W` records; `cranqrel` numbers queries 1..n in file order (not by the `.I`
ids of `cran.qry`) and grades relevance 1 (complete answer) to 4, with -1 for "not relevant": gain = 5 - code.
The other SMART collections (CISI, CACM, MED, NPL) list only relevant pairs, four columns a line
(`qid doc 0 0.000000`): each listed pair has gain 1. Their query ids run 1..n in file order too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("beir", "trec", "smart")


@dataclass(frozen=True)
class CorpusDoc:
    id: str
    title: str
    text: str


def _smart_records(text: str) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    field = None
    for line in text.splitlines():
        match = re.match(r"^\.([A-Z])\s*(.*)$", line)
        if match:
            tag, rest = match.groups()
            if tag == "I":
                records.append({"I": rest.strip()})
                field = None
            else:
                field = tag
                records[-1].setdefault(field, "")
            continue
        if field and records:
            records[-1][field] += line.strip() + " "
    return [{k: v.strip() for k, v in r.items()} for r in records]


def load_corpus(path: Path, fmt: str) -> list[CorpusDoc]:
    """Documents of a corpus file: SMART (`cran.all.1400`) or BEIR (`corpus.jsonl`)."""
    if fmt == "smart":
        return [CorpusDoc(r["I"], r.get("T", ""), r.get("W", "")) for r in _smart_records(path.read_text())]
    if fmt == "beir":
        docs = []
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                docs.append(CorpusDoc(str(row["_id"]), row.get("title", "") or "", row.get("text", "") or ""))
        return docs
    raise ValueError(f"corpus format must be smart or beir, not {fmt!r}")


def load_queries(path: Path, fmt: str) -> dict[str, str]:
    """Query id → text. SMART ids are positions in the file (1..n), matching how cranqrel numbers them."""
    text = path.read_text()
    if fmt == "smart":
        return {str(i): r.get("W", "") for i, r in enumerate(_smart_records(text), start=1)}
    if fmt == "beir":
        queries = {}
        for line in text.splitlines():
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = row["text"]
        return queries
    if fmt == "trec":
        if "<top>" in text:
            queries = {}
            for block in re.findall(r"<top>(.*?)</top>", text, flags=re.S):
                num = re.search(r"<num>\s*(?:Number:)?\s*(\S+)", block)
                title = re.search(r"<title>\s*(?:Topic:)?\s*(.*?)(?=<|\Z)", block, flags=re.S)
                if num and title:
                    queries[num.group(1)] = " ".join(title.group(1).split())
            return queries
        # The other common TREC-style layout: "qid<TAB>text" per line.
        return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    raise ValueError(f"query format must be one of {FORMATS}, not {fmt!r}")


def load_qrels(path: Path, fmt: str) -> dict[str, dict[str, float]]:
    """Query id → {doc id → gain}; only positive gains are kept."""
    qrels: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if fmt == "smart" and len(parts) >= 4:
            # CISI, CACM, MED, NPL: "qid doc 0 0.000000", where every listed pair is relevant.
            qid, doc, gain = parts[0], parts[1], 1.0
        elif fmt == "smart":
            qid, doc, code = parts[0], parts[1], int(parts[2]) if len(parts) > 2 else 1
            gain = 5 - code if 1 <= code <= 4 else 0
        elif fmt == "trec":
            qid, doc, gain = parts[0], parts[2], float(parts[3])
        elif fmt == "beir":
            if parts[0] == "query-id":
                continue
            qid, doc, gain = parts[0], parts[1], float(parts[2])
        else:
            raise ValueError(f"qrels format must be one of {FORMATS}, not {fmt!r}")
        if gain > 0:
            qrels.setdefault(qid, {})[doc] = float(gain)
    return qrels


def ndcg_at(ranked: Sequence[str], gains: dict[str, float], k: int = 10) -> float:
    dcg = sum(gains.get(doc, 0.0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], gains: dict[str, float], k: int = 100) -> float:
    relevant = {d for d, g in gains.items() if g > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], gains: dict[str, float], k: int = 10) -> float:
    for i, doc in enumerate(ranked[:k]):
        if gains.get(doc, 0.0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def documents_in_order(chunk_sources: Iterable[str]) -> list[str]:
    """Chunk ranking → document ranking, each document at its best chunk's rank (max aggregation)."""
    return list(dict.fromkeys(chunk_sources))


@dataclass
class Scores:
    ndcg10: float
    recall100: float
    mrr10: float
    queries: int


def score(runs: dict[str, list[str]], qrels: dict[str, dict[str, float]]) -> Scores:
    """Mean metrics over the judged queries (a judged query with no run counts as zero)."""
    judged = [q for q in qrels if qrels[q]]
    if not judged:
        return Scores(0.0, 0.0, 0.0, 0)
    n = len(judged)
    return Scores(
        sum(ndcg_at(runs.get(q, []), qrels[q]) for q in judged) / n,
        sum(recall_at(runs.get(q, []), qrels[q]) for q in judged) / n,
        sum(mrr_at(runs.get(q, []), qrels[q]) for q in judged) / n,
        n,
    )


@dataclass(frozen=True)
class Evaluator:
    """Implements `hearth.rag.ports.RetrievalEvaluator` over the rag service's search: the evaluated path
    `hearth rag eval` measures through HTTP (one mode, `depth` chunks, no rerank), called in-process."""

    search: Any  # hearth.rag.search.Search

    @staticmethod
    def load_judgements(
        *, queries: Path, qrels: Path, fmt: str
    ) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        try:
            topics = load_queries(queries, fmt)
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"cannot read {queries.name} as {fmt} queries: {exc}") from None
        try:
            judgements = load_qrels(qrels, fmt)
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"cannot read {qrels.name} as {fmt} relevance judgements: {exc}") from None
        judged = {q: t for q, t in topics.items() if judgements.get(q)}
        if not judged:
            raise ValueError(
                f"no query in {queries.name} has relevance judgements in {qrels.name} ({fmt} format)"
            )
        return judged, {q: judgements[q] for q in judged}

    async def evaluate(
        self,
        *,
        user_id: str,
        collection: str,
        queries: dict[str, str],
        qrels: dict[str, dict[str, float]],
        mode: str,
        depth: int = 100,
    ) -> dict[str, float]:
        runs: dict[str, list[str]] = {}
        for qid, text in queries.items():
            result = await self.search.search(
                user_id=user_id,
                collection=collection,
                query=text,
                top_k=depth,
                top_n=depth,
                mode=mode,
                rerank=False,
            )
            runs[qid] = documents_in_order(s.metadata.get("source", s.document_id) for s in result.sources)
        scores = score(runs, qrels)
        return {
            "ndcg10": scores.ndcg10,
            "recall100": scores.recall100,
            "mrr10": scores.mrr10,
            "queries": scores.queries,
        }
