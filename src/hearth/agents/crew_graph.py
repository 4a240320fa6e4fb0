"""The research crew: researcher (tools) → writer → reviewer, with a bounded revision loop (the reviewer may
send the draft back at most `max_revisions` times). A LangGraph graph, checkpointed like the router; every
step records its role, input, output, tool calls, tokens and latency."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from hearth.agents import judge as judging
from hearth.agents.llm import ModelFailed
from hearth.agents.runtime import Step, deps, emit
from hearth.agents.tools import ToolContext, ToolRegistry
from hearth.config import Settings
from hearth.gateway.service import Gateway

ROLES = {
    "researcher": "Gather the facts the task needs with the tools available, and note where each came from.",
    "writer": "Write a clear, correct answer to the task from the research notes, citing notes as [n].",
    "reviewer": "Approve the draft, or send it back with specific feedback when it is wrong, unsupported "
    "or unclear.",
}
MAX_TOOL_CALLS = 4
_ARITHMETIC = re.compile(r"[-+(]*\d[\d.\s]*(?:[-+*/^%]+\s*[(]*\s*\d[\d.\s]*[)]*)+")


class CrewState(TypedDict, total=False):
    query: str
    collection: str | None
    tools: list[str]
    max_revisions: int
    max_tokens: int
    notes: list[dict[str, Any]]  # numbered research notes: {n, tool, text, source}
    draft: str
    feedback: str | None
    revisions: int
    approved: bool
    score: int
    reviews: Annotated[list[dict[str, Any]], operator.add]
    steps: Annotated[list[dict[str, Any]], operator.add]
    final: dict[str, Any]


@dataclass
class CrewGraph:
    gateway: Gateway
    tools: ToolRegistry
    settings: Settings

    def build(self, checkpointer: BaseCheckpointSaver | None) -> CompiledStateGraph:  # type: ignore[type-arg]
        g = StateGraph(CrewState)
        g.add_node("researcher", self.researcher)
        g.add_node("writer", self.writer)
        g.add_node("reviewer", self.reviewer)
        g.add_node("finish", self.finish)
        g.add_edge(START, "researcher")
        g.add_edge("researcher", "writer")
        g.add_edge("writer", "reviewer")
        g.add_conditional_edges("reviewer", _after_review, {"writer": "writer", "finish": "finish"})
        g.add_edge("finish", END)
        return g.compile(checkpointer=checkpointer)

    async def researcher(self, state: CrewState, config: RunnableConfig) -> dict[str, Any]:
        d = deps(config)
        step = Step("researcher", {"task": state["query"], "tools": state["tools"]})
        allowed = [t for t in await self.tools.all() if t.name in state["tools"]]
        plan, planned_by, note = None, "rules", None
        if allowed:
            listing = "\n".join(
                f"- {t.name}: {t.description} Arguments (JSON schema): "
                + orjson.dumps(t.input_schema).decode()
                for t in allowed
            )
            context = f" The user's collection is {state['collection']!r}." if state.get("collection") else ""
            try:
                c = await step.model(
                    self.gateway,
                    d.caller,
                    alias=self.settings.agents_chat_model,
                    messages=[
                        {
                            "role": "system",
                            "content": f"You are the researcher. Goal: {ROLES['researcher']} "
                            f"Tools:\n{listing}\n"
                            'Reply with a JSON list of calls: [{"tool": "<name>", "arguments": {...}}], at '
                            f"most {MAX_TOOL_CALLS}.{context}",
                        },
                        {"role": "user", "content": state["query"]},
                    ],
                    max_tokens=160,
                    temperature=0.0,
                    timeout=self.settings.agents_classify_timeout,
                )
                plan = _parse_plan(c.text, {t.name for t in allowed})
                if plan:
                    planned_by = "model"
                else:
                    note = "the model's plan was unusable: rules chose the tools"
            except ModelFailed as exc:
                note = f"the planning model failed ({exc}): rules chose the tools"
        if not plan:
            plan = _rule_plan(state["query"], state.get("collection"), {t.name for t in allowed})
        ctx = ToolContext(user_id=d.user_id, caller=d.caller, is_admin=d.is_admin)
        notes: list[dict[str, Any]] = []
        for call in plan[:MAX_TOOL_CALLS]:
            emit(
                {
                    "type": "tool_call",
                    "node": "researcher",
                    "tool": call["tool"],
                    "arguments": call["arguments"],
                }
            )
            result = await self.tools.call(call["tool"], call["arguments"], ctx)
            step.tool_calls.append(result.as_dict())
            emit({"type": "tool_result", "node": "researcher", **result.as_dict()})
            if result.ok:
                notes.extend(_notes_from(result.tool, result.result, start=len(notes) + 1))
        output = {"planned_by": planned_by, "note": note, "notes": notes}
        return {"notes": notes, "revisions": 0, "feedback": None, "steps": [_with_role(step, output)]}

    async def writer(self, state: CrewState, config: RunnableConfig) -> dict[str, Any]:
        revision = state.get("revisions", 0)
        step = Step(
            "writer", {"task": state["query"], "revision": revision, "feedback": state.get("feedback")}
        )
        notes = "".join(f"[{n['n']}] {n['text']}\n" for n in state.get("notes", [])) or "(no notes)\n"
        user = f"Task: {state['query']}\n\nResearch notes:\n{notes}"
        if state.get("feedback"):
            user += f"\nYour previous draft:\n{state.get('draft', '')}\n\n"
            user += f"Reviewer's feedback: {state['feedback']}\n"
            user += "Write an improved answer."
        try:
            c = await step.model(
                self.gateway,
                deps(config).caller,
                alias=self.settings.agents_chat_model,
                messages=[
                    {"role": "system", "content": f"You are the writer. Goal: {ROLES['writer']}"},
                    {"role": "user", "content": user},
                ],
                max_tokens=state["max_tokens"],
                timeout=self.settings.agents_model_timeout,
                on_token=lambda t: emit({"type": "token", "node": "writer", "content": t}),
            )
        except ModelFailed as exc:
            raise RuntimeError(f"writer: {exc}") from exc
        draft = c.text.strip()
        return {"draft": draft, "steps": [_with_role(step, {"draft": draft})]}

    async def reviewer(self, state: CrewState, config: RunnableConfig) -> dict[str, Any]:
        revision = state.get("revisions", 0)
        draft = state.get("draft", "")
        notes = [n["text"] for n in state.get("notes", [])]
        step = Step("reviewer", {"revision": revision, "draft_chars": len(draft)})
        signals = judging.signals(
            question=state["query"], answer=draft, sources=notes, citations_expected=bool(notes)
        )
        verdict, score, feedback, by, note = None, signals["score"], None, "signals", None
        try:
            c = await step.model(
                self.gateway,
                deps(config).caller,
                alias=self.settings.agents_judge_model,
                messages=[
                    {
                        "role": "system",
                        "content": f"You are the reviewer. Goal: {ROLES['reviewer']} Reply as JSON: "
                        '{"verdict": "approve" or "revise", "score": <0-100>, "feedback": "<what to fix>"}',
                    },
                    {
                        "role": "user",
                        "content": f"Task: {state['query']}\nNotes:\n"
                        + "".join(f"[{i}] {t[:400]}\n" for i, t in enumerate(notes, 1))
                        + f"Draft:\n{draft}\nJSON:",
                    },
                ],
                max_tokens=96,
                temperature=0.0,
                timeout=self.settings.agents_judge_timeout,
            )
            verdict, parsed, feedback = _parse_review(c.text)
            if parsed is not None:
                score, by = parsed, "model"
            if verdict is None and parsed is None:
                note = "the reviewer's reply was unusable: deterministic signals decided"
        except ModelFailed as exc:
            note = f"the reviewer model failed ({exc}): deterministic signals decided"
        if verdict is None:
            verdict = "approve" if score >= self.settings.agents_threshold else "revise"
        if verdict == "revise" and not feedback:
            feedback = _feedback_from(signals)
        approved = verdict == "approve"
        bounded = not approved and revision >= state["max_revisions"]
        review = {
            "revision": revision,
            "verdict": verdict,
            "score": score,
            "reviewed_by": by,
            "feedback": feedback,
            "signals": signals,
            "note": note,
            "revision_limit_reached": bounded,
        }
        update: dict[str, Any] = {
            "approved": approved,
            "score": score,
            "feedback": feedback if not approved else None,
            "reviews": [review],
            "steps": [_with_role(step, review)],
        }
        if not approved and not bounded:
            update["revisions"] = revision + 1
        return update

    async def finish(self, state: CrewState, config: RunnableConfig) -> dict[str, Any]:
        step = Step("finish", {"reviews": len(state.get("reviews", []))})
        final = {
            "answer": state.get("draft", ""),
            "approved": state.get("approved", False),
            "score": state.get("score"),
            "revisions": state.get("revisions", 0),
            "max_revisions": state["max_revisions"],
            "notes": state.get("notes", []),
            "reviews": state.get("reviews", []),
        }
        return {"final": final, "steps": [step.record({"approved": final["approved"]})]}


async def _after_review(state: CrewState) -> str:
    """A coroutine so LangGraph runs it on the loop, not in a thread (see router_graph._after_judge)."""
    if state.get("approved"):
        return "finish"
    return "finish" if state["reviews"][-1]["revision_limit_reached"] else "writer"


def _with_role(step: Step, output: dict[str, Any]) -> dict[str, Any]:
    return step.record(output, role=step.node, goal=ROLES[step.node])


def _parse_plan(text: str, allowed: set[str]) -> list[dict[str, Any]]:
    start, end = text.find("["), text.rfind("]")
    if start == -1 or end <= start:
        return []
    try:
        items = orjson.loads(text[start : end + 1])
    except orjson.JSONDecodeError:
        return []
    plan = []
    for item in items if isinstance(items, list) else []:
        if (
            isinstance(item, dict)
            and item.get("tool") in allowed
            and isinstance(item.get("arguments", {}), dict)
        ):
            plan.append({"tool": item["tool"], "arguments": item.get("arguments", {})})
    return plan


def _rule_plan(query: str, collection: str | None, allowed: set[str]) -> list[dict[str, Any]]:
    """The floor when the model plans nothing usable: search the collection; compute what looks like
    arithmetic."""
    plan: list[dict[str, Any]] = []
    if collection and "rag_search" in allowed:
        plan.append(
            {"tool": "rag_search", "arguments": {"collection": collection, "query": query, "top_n": 3}}
        )
    if "calculator" in allowed:
        for match in _ARITHMETIC.finditer(query):
            expression = match.group(0).strip()
            if re.search(r"\d\s*[-+*/^%]", expression):
                plan.append({"tool": "calculator", "arguments": {"expression": expression}})
                break
    return plan


def _notes_from(tool: str, result: Any, *, start: int) -> list[dict[str, Any]]:
    if tool == "rag_search" and isinstance(result, list):
        return [
            {
                "n": start + i,
                "tool": tool,
                "text": r["text"],
                "source": r.get("title") or r.get("document_id"),
            }
            for i, r in enumerate(result)
        ]
    text = orjson.dumps(result).decode() if not isinstance(result, str) else result
    return [{"n": start, "tool": tool, "text": text[:2000], "source": tool}]


def _parse_review(text: str) -> tuple[str | None, int | None, str | None]:
    verdict: str | None = None
    feedback: str | None = None
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            data = orjson.loads(text[start : end + 1])
            if isinstance(data, dict):
                v = str(data.get("verdict", "")).lower()
                verdict = v if v in ("approve", "revise") else None
                feedback = str(data["feedback"]) if data.get("feedback") else None
        except orjson.JSONDecodeError:
            pass
    if verdict is None:
        words = {w for w in ("approve", "revise") if re.search(rf"\b{w}[ds]?\b", text, re.IGNORECASE)}
        verdict = words.pop() if len(words) == 1 else None
    return verdict, judging.parse_score(text), feedback


def _feedback_from(signals: dict[str, Any]) -> str:
    if signals.get("empty"):
        return "The draft is empty: answer the task."
    hints = []
    if signals.get("repetition", 0) > 0.3:
        hints.append("remove the repeated text")
    if signals.get("citation_coverage", 1) < 0.5:
        hints.append("cite the research notes as [n] for each claim")
    if signals.get("source_overlap", 1) < 0.5:
        hints.append("stay closer to what the notes say")
    if signals.get("question_overlap", 1) < 0.5:
        hints.append("address the task's question directly")
    return ("Revise: " + "; ".join(hints) + ".") if hints else "Revise: make the answer more complete."
