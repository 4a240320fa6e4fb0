// The agents screen: start a query-router or crew run and watch its steps and tokens stream in; list past
// runs, open one (its steps from the stored run), resume one that failed or was interrupted.
import { api, streamEvents } from "./api.js";
import { el, toast, when } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const state = { kind: "router", run: null, busy: false };

function describe(step) {
  const o = step.output ?? {};
  switch (step.node) {
    case "classify": return `${o.category} (by ${o.classified_by})`;
    case "route": return `${o.route}${o.collection ? ` → ${o.collection}` : ""}: ${o.why ?? ""}`;
    case "retrieve": {
      const found = o.sources ?? [];
      return `${found.length} passage${found.length === 1 ? "" : "s"}: ${found.map((s) => s.title).join(", ")}`;
    }
    case "generate": return `answered (${o.answer_mode})`;
    case "judge": return `score ${o.score} by ${o.judged_by}${o.passed ? "" : " (below the threshold)"}`;
    case "retry": return `retry: ${o.strategy}`;
    case "researcher": return `${step.tool_calls.length} tool call(s): ${step.tool_calls.map((c) => `${c.tool} ${c.ok ? "ok" : "failed"}`).join(", ") || "none"}`;
    case "writer": return `draft of ${(o.draft ?? "").length} characters`;
    case "reviewer": return `${o.verdict} (score ${o.score} by ${o.reviewed_by})${o.feedback ? `: ${o.feedback}` : ""}`;
    default: return "";
  }
}

function addStep(step) {
  $("step-table").hidden = false;
  const tokens = step.tokens.prompt + step.tokens.completion;
  $("step-rows").append(
    el("tr", {},
      el("th", { scope: "row" }, step.node),
      el("td", {}, describe(step)),
      el("td", {}, tokens ? String(tokens) : "—"),
      el("td", {}, `${Math.round(step.latency_ms)} ms`)),
  );
}

function showAnswer(text, meta, sources = []) {
  $("answer").hidden = false;
  // A citation [n] shows its source: a router's passage, or a crew's research note.
  const onCite = (n) => {
    const s = sources[n - 1];
    if (s) toast(`[${n}] ${s.title ?? s.source ?? ""}: ${(s.text ?? "").slice(0, 300)}`);
  };
  renderMarkdown($("answer-text"), text, { sourceCount: sources.length, onCite });
  $("answer-meta").textContent = meta;
}

function summary(kind, result) {
  if (!result) return "";
  if (kind === "router") {
    return `${result.category} → ${result.route}; judged ${result.score} by ${result.judged_by}` +
      `${result.passed ? "" : " (below the threshold)"}${result.retried ? "; retried once" : ""}`;
  }
  return `${result.approved ? "approved" : "not approved (revision limit reached)"} after ${result.revisions} revision(s)`;
}

function reset(title) {
  $("run-title").textContent = title;
  $("step-rows").replaceChildren();
  $("step-table").hidden = true;
  $("answer").hidden = true;
  $("resume").hidden = true;
  $("run-status").textContent = "";
}

function showRun(run) {
  state.run = run;
  reset(run.query);
  for (const step of run.steps ?? []) addStep(step);
  const result = run.result;
  if (result) showAnswer(result.answer ?? "", summary(run.kind, result), result.sources ?? result.notes ?? []);
  $("run-status").textContent = `${run.status}${run.error ? `: ${run.error}` : ""} · ${when(run.created_at)}`;
  $("resume").hidden = !["failed", "interrupted"].includes(run.status);
}

async function follow(path, json, kind) {
  state.busy = true;
  $("agent-run").disabled = true;
  let text = "";
  try {
    for await (const { event, data } of streamEvents(path, { json })) {
      if (event === "run") $("run-status").textContent = data.resumed ? "resuming…" : "running…";
      else if (event === "node") addStep(data.step);
      else if (event === "token") {
        text += data.content;
        showAnswer(text, "writing…");
      } else if (event === "done") {
        const run = await api(`/api/agents/${kind}/${data.run.id}`);
        showRun(run);
      } else if (event === "error") {
        $("run-status").textContent = `${data.run?.status ?? "failed"}: ${data.error.message}`;
        if (data.run) state.run = { ...data.run, kind };
        $("resume").hidden = false;
      }
    }
  } catch (e) {
    toast(e.message, "error");
  } finally {
    state.busy = false;
    $("agent-run").disabled = false;
    loadRuns();
  }
}

async function loadRuns() {
  let runs = [];
  try {
    runs = await api(`/api/agents/${state.kind}?limit=50`);
  } catch (e) {
    return toast(e.message, "error");
  }
  $("run-list").replaceChildren(
    ...runs.map((r) =>
      el("li", {},
        el("a", { href: "#", "aria-current": state.run?.id === r.id ? "page" : null, onclick: (e) => open(e, r) }, r.query.slice(0, 80)),
        el("small", { class: "muted" }, ` ${r.status}`)),
    ),
  );
  if (!runs.length) $("run-list").append(el("li", { class: "muted" }, "No runs yet."));
}

async function open(event, run) {
  event.preventDefault();
  try {
    showRun(await api(`/api/agents/${run.kind}/${run.id}`));
  } catch (e) {
    toast(e.message, "error");
  }
  loadRuns();
}

async function loadCollections() {
  try {
    const collections = await api("/api/rag/collections");
    $("agent-collection").append(...collections.map((c) => el("option", { value: c.name }, c.name)));
  } catch {
    /* RAG not available: runs go without a collection */
  }
}

$("agent-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.busy) return;
  const kind = $("agent-kind").value;
  const query = $("agent-query").value.trim();
  if (!query) return;
  const collection = $("agent-collection").value || null;
  reset(query);
  state.kind = kind;
  $("run-kind-filter").value = kind;
  follow(`/api/agents/${kind}`, { query, collection, stream: true }, kind);
});
$("agent-query").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("agent-form").requestSubmit();
  }
});
$("run-kind-filter").addEventListener("change", () => {
  state.kind = $("run-kind-filter").value;
  loadRuns();
});
$("resume").addEventListener("click", () => {
  const run = state.run;
  if (!run || state.busy) return;
  reset(run.query);
  follow(`/api/agents/${run.kind}/${run.id}/resume`, { stream: true }, run.kind);
});

loadCollections();
loadRuns();
