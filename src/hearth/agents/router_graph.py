"""The query router: classify → route (RAG or direct) → [retrieve] → generate → judge → retry once below
the threshold (retrieval widened, the other mode, or the query rewritten) → finish. A LangGraph graph whose
every step is checkpointed, so a run can be inspected step by step and resumed after a crash."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from hearth.agents import classify as classifier
from hearth.agents import judge as judging
from hearth.agents.llm import ModelFailed
from hearth.agents.runtime import Step, deps, emit
from hearth.config import Settings
from hearth.gateway.service import Gateway
from hearth.rag.ports import Retriever
from hearth.rag.schemas import RagSource

OTHER_MODE = {"hybrid": "dense", "dense": "hybrid", "sparse": "hybrid", None: "dense"}
DIRECT_SYSTEM = "You are Hearth, a helpful assistant. Answer the user's message directly and concisely."
REWRITE_PROMPT = (
    "Rewrite the user's question so it is clear, specific and self-contained. Reply with the rewritten "
    "question only."
)


class RouterState(TypedDict, total=False):
    # the request
    query: str
    collection: str | None
    collections: list[str]
    route_request: str  # auto | rag | direct
    mode: str | None
    top_k: int
    top_n: int
    threshold: int
    max_tokens: int
    # decisions and results
    category: str
    classified_by: str  # model | rules
    route: str  # rag | direct
    chosen_collection: str | None
    attempt: int
    strategy: str | None  # the retry's: widen | rag | rewrite
    search_query: str
    sources: list[dict[str, Any]]
    answer: str
    answer_mode: str  # generated | extractive_fallback | direct
    citations: list[dict[str, Any]]
    score: int
    judged_by: str  # model | signals
    attempts: Annotated[list[dict[str, Any]], operator.add]
    steps: Annotated[list[dict[str, Any]], operator.add]
    final: dict[str, Any]


@dataclass
class RouterGraph:
    gateway: Gateway
    retriever: Retriever | None
    settings: Settings

    def build(self, checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:  # type: ignore[type-arg]
        g = StateGraph(RouterState)
        g.add_node("classify", self.classify)
        g.add_node("route", self.route)
        g.add_node("retrieve", self.retrieve)
        g.add_node("generate", self.generate)
        g.add_node("judge", self.judge)
        g.add_node("retry", self.retry)
        g.add_node("finish", self.finish)
        g.add_edge(START, "classify")
        g.add_edge("classify", "route")
        g.add_conditional_edges("route", _by_route, {"rag": "retrieve", "direct": "generate"})
        g.add_edge("retrieve", "generate")
        g.add_edge("generate", "judge")
        g.add_conditional_edges("judge", self._after_judge, {"retry": "retry", "finish": "finish"})
        g.add_conditional_edges("retry", _by_route, {"rag": "retrieve", "direct": "generate"})
        g.add_edge("finish", END)
        return g.compile(checkpointer=checkpointer)

    # -- nodes -------------------------------------------------------------------------------------------

    async def classify(self, state: RouterState, config: RunnableConfig) -> dict[str, Any]:
        step = Step("classify", {"query": state["query"]})
        floor = classifier.rules(state["query"])
        label, by, note = floor, "rules", None
        try:
            c = await step.model(
                self.gateway,
                deps(config).caller,
                alias=self.settings.agents_classifier_model,
                messages=[
                    {"role": "system", "content": classifier.PROMPT},
                    {"role": "user", "content": state["query"]},
                ],
                max_tokens=8,
                temperature=0.0,
                timeout=self.settings.agents_classify_timeout,
            )
            parsed = classifier.parse_label(c.text)
            if parsed is not None:
                label, by = parsed, "model"
            else:
                note = f"the model's label was unusable ({c.text.strip()[:80]!r}): rules decided"
        except ModelFailed as exc:
            note = f"the classifier model failed ({exc}): rules decided"
        output = {"category": label, "classified_by": by, "rules_said": floor, "note": note}
        return {"category": label, "classified_by": by, "steps": [step.record(output)]}

    async def route(self, state: RouterState, config: RunnableConfig) -> dict[str, Any]:
        step = Step("route", {"category": state["category"], "route_request": state["route_request"]})
        candidates = [c for c in [state.get("collection"), *state.get("collections", [])] if c]
        candidates = list(dict.fromkeys(candidates))
        if state["route_request"] != "auto":
            route = state["route_request"]
            why = "asked for"
        elif not candidates or self.retriever is None:
            route, why = "direct", "no collection to answer from"
        elif state["category"] in ("factual", "analytical"):
            route, why = "rag", f"a {state['category']} question with a collection to answer from"
        else:
            route, why = "direct", f"a {state['category']} message needs no sources"
        chosen = candidates[0] if candidates else None
        scores: dict[str, float] = {}
        if route == "rag" and len(candidates) > 1 and self.retriever is not None:
            # The collection router: the collection whose best passage scores highest answers.
            for name in candidates:
                best = await self.retriever.retrieve(
                    user_id=deps(config).user_id, collection=name, query=state["query"], top_k=5, top_n=1
                )
                scores[name] = round(best[0].score, 4) if best else 0.0
            chosen = max(candidates, key=lambda n: scores[n])
        output = {"route": route, "why": why, "collection": chosen if route == "rag" else None}
        if scores:
            output["collection_scores"] = scores
        return {
            "route": route,
            "chosen_collection": chosen,
            "search_query": state["query"],
            "attempt": 1,
            "strategy": None,
            "steps": [step.record(output)],
        }

    async def retrieve(self, state: RouterState, config: RunnableConfig) -> dict[str, Any]:
        assert self.retriever is not None  # route() sends nothing here without one
        params = {
            "collection": state["chosen_collection"],
            "query": state["search_query"],
            "top_k": state["top_k"],
            "top_n": state["top_n"],
            "mode": state.get("mode"),
        }
        step = Step("retrieve", {**params, "attempt": state["attempt"]})
        found = await self.retriever.retrieve(user_id=deps(config).user_id, **params)  # type: ignore[arg-type]
        sources = [s.model_dump(mode="json") for s in found]
        output = {
            "sources": [
                {"document_id": s.document_id, "title": s.title, "score": round(s.score, 4)} for s in found
            ]
        }
        return {"sources": sources, "steps": [step.record(output)]}

    async def generate(self, state: RouterState, config: RunnableConfig) -> dict[str, Any]:
        rag = state["route"] == "rag"
        question = state["search_query"]
        step = Step("generate", {"route": state["route"], "question": question, "attempt": state["attempt"]})
        sources = [RagSource.model_validate(s) for s in state.get("sources", [])] if rag else []
        if rag:
            assert self.retriever is not None
            messages = self.retriever.answer_messages(question=question, sources=sources)
        else:
            messages = [{"role": "system", "content": DIRECT_SYSTEM}, {"role": "user", "content": question}]
        try:
            c = await step.model(
                self.gateway,
                deps(config).caller,
                alias=self.settings.agents_chat_model,
                messages=messages,
                max_tokens=state["max_tokens"],
                timeout=self.settings.agents_model_timeout,
                on_token=lambda t: emit({"type": "token", "node": "generate", "content": t}),
            )
        except ModelFailed as exc:
            # No answer to judge: the run fails here and can be resumed from this node.
            raise RuntimeError(f"generate: {exc}") from exc
        answer, mode, citations, note = c.text.strip(), "direct", [], None
        if rag and sources:
            assert self.retriever is not None
            checked = self.retriever.check_answer(question=state["query"], answer=answer, sources=sources)
            answer, mode, citations = checked["answer"], checked["answer_mode"], checked["citations"]
            note = checked.get("answer_note")
            if mode == "extractive_fallback":
                emit({"type": "extractive_fallback", "content": answer, "reason": note})
        elif rag:
            mode = "generated"
        output = {"answer": answer, "answer_mode": mode, "citations": citations, "note": note}
        return {
            "answer": answer,
            "answer_mode": mode,
            "citations": citations,
            "steps": [step.record(output)],
        }

    async def judge(self, state: RouterState, config: RunnableConfig) -> dict[str, Any]:
        rag = state["route"] == "rag"
        texts = [s["text"] for s in state.get("sources", [])] if rag else []
        step = Step("judge", {"attempt": state["attempt"], "answer_chars": len(state["answer"])})
        signals = judging.signals(
            question=state["query"], answer=state["answer"], sources=texts, citations_expected=rag
        )
        score, by, note, raw = signals["score"], "signals", None, None
        if not state["answer"].strip():
            note = "empty answer: scored 0 without asking the judge"
        else:
            try:
                c = await step.model(
                    self.gateway,
                    deps(config).caller,
                    alias=self.settings.agents_judge_model,
                    messages=judging.messages(question=state["query"], answer=state["answer"], sources=texts),
                    max_tokens=48,
                    temperature=0.0,
                    timeout=self.settings.agents_judge_timeout,
                )
                raw = c.text.strip()[:200]
                parsed = judging.parse_score(c.text)
                if parsed is not None:
                    score, by = parsed, "model"
                else:
                    note = "the judge's reply had no score: deterministic signals scored the answer"
            except ModelFailed as exc:
                note = f"the judge failed ({exc}): deterministic signals scored the answer"
        passed = score >= state["threshold"]
        output = {
            "score": score,
            "judged_by": by,
            "passed": passed,
            "threshold": state["threshold"],
            "signals": signals,
            "judge_reply": raw,
            "note": note,
        }
        attempt = {
            "attempt": state["attempt"],
            "route": state["route"],
            "strategy": state.get("strategy"),
            "collection": state.get("chosen_collection") if state["route"] == "rag" else None,
            "query": state["search_query"],
            "answer": state["answer"],
            "answer_mode": state["answer_mode"],
            "citations": state.get("citations", []),
            "sources": _brief_sources(state.get("sources", [])) if rag else [],
            "score": score,
            "judged_by": by,
        }
        return {"score": score, "judged_by": by, "attempts": [attempt], "steps": [step.record(output)]}

    # The edge functions are coroutines on purpose: LangGraph runs a plain function of an async graph in a
    # thread pool, and that hop (plus the GIL handover it forces on the loop's socket writes) cost the
    # node before it a few ms per run, most on PostgreSQL.
    async def _after_judge(self, state: RouterState) -> str:
        return "retry" if state["score"] < state["threshold"] and state["attempt"] == 1 else "finish"

    async def retry(self, state: RouterState, config: RunnableConfig) -> dict[str, Any]:
        step = Step("retry", {"score": state["score"], "route": state["route"]})
        update: dict[str, Any] = {"attempt": state["attempt"] + 1}
        has_collection = bool(state.get("chosen_collection")) and self.retriever is not None
        if state["route"] == "rag":
            # Widen retrieval: more candidates, more passages, the other retrieval mode.
            update.update(
                strategy="widen",
                top_k=min(100, state["top_k"] * 3),
                top_n=min(10, state["top_n"] + 2),
                mode=OTHER_MODE.get(state.get("mode"), "dense"),
            )
            output = {k: update[k] for k in ("strategy", "top_k", "top_n", "mode")}
        elif has_collection:
            update.update(strategy="rag", route="rag")  # the other mode: answer from the collection
            output = {"strategy": "rag", "collection": state["chosen_collection"]}
        else:
            rewritten = state["query"]
            try:
                c = await step.model(
                    self.gateway,
                    deps(config).caller,
                    alias=self.settings.agents_chat_model,
                    messages=[
                        {"role": "system", "content": REWRITE_PROMPT},
                        {"role": "user", "content": state["query"]},
                    ],
                    max_tokens=96,
                    temperature=0.0,
                    timeout=self.settings.agents_classify_timeout,
                )
                if c.text.strip():
                    rewritten = c.text.strip().splitlines()[0][:2000]
            except ModelFailed:
                pass  # the original query is kept
            update.update(strategy="rewrite", search_query=rewritten)
            output = {"strategy": "rewrite", "query": rewritten}
        return {**update, "steps": [step.record(output)]}

    async def finish(self, state: RouterState, config: RunnableConfig) -> dict[str, Any]:
        step = Step("finish", {"attempts": len(state["attempts"])})
        # The better-scored attempt is the answer (the later one on a tie: it had more to work with).
        best = max(reversed(state["attempts"]), key=lambda a: a["score"])
        final = {
            "answer": best["answer"],
            "category": state["category"],
            "classified_by": state["classified_by"],
            "route": best["route"],
            "collection": best["collection"],
            "answer_mode": best["answer_mode"],
            "citations": best["citations"],
            "sources": best["sources"],
            "score": best["score"],
            "judged_by": best["judged_by"],
            "passed": best["score"] >= state["threshold"],
            "threshold": state["threshold"],
            "retried": len(state["attempts"]) > 1,
            "attempts": state["attempts"],
        }
        output = {"chosen_attempt": best["attempt"], "score": best["score"], "passed": final["passed"]}
        return {"final": final, "steps": [step.record(output)]}


async def _by_route(state: RouterState) -> str:
    return state["route"]


def _brief_sources(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "n": i,
            "document_id": s["document_id"],
            "title": s["title"],
            "score": round(s["score"], 4),
            "text": s["text"][:300],
        }
        for i, s in enumerate(sources, 1)
    ]
