// Workflows: start a run of a pipeline, see your runs, follow the selected run's steps until it ends, cancel.
import { api } from "./api.js";
import { el, toast, when } from "./dom.js";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
let pipelines = [];
let selected = null;
let timer = null;

const badge = (status) => el("span", { class: `status status-${status}` }, status);

function describe(pipeline) {
  const params = Object.entries(pipeline.params).map(([name, p]) => `${name}: ${p.type}${"default" in p ? ` = ${JSON.stringify(p.default)}` : ""}`);
  const steps = pipeline.steps.map((s) => s.name).join(" → ");
  $("pipeline-help").textContent = `${pipeline.description || pipeline.name} · steps ${steps}${params.length ? ` · parameters ${params.join(", ")}` : ""}`;
}

async function loadPipelines() {
  pipelines = await api("/api/workflows/pipelines");
  $("pipeline").replaceChildren(...pipelines.map((p) => el("option", { value: p.name }, `${p.name} (v${p.version})`)));
  if (pipelines.length) describe(pipelines[0]);
}

async function loadRuns() {
  const { data } = await api("/api/workflows/runs?limit=50");
  $("run-rows").replaceChildren(
    ...data.map((run) => {
      const link = el("button", { type: "button", class: "link", "data-run": run.id }, run.id.slice(0, 12));
      link.addEventListener("click", () => select(run.id));
      return el("tr", {}, el("td", {}, link), el("td", {}, `${run.pipeline} v${run.version}`), el("td", {}, badge(run.status)), el("td", {}, run.started_at ? when(run.started_at) : ""), el("td", {}, run.error ?? ""));
    }),
  );
}

function showRun(run) {
  $("run-detail").hidden = false;
  $("run-title").replaceChildren(`${run.pipeline} v${run.version} · run ${run.id.slice(0, 12)} · `, badge(run.status));
  $("run-error").hidden = !run.error;
  $("run-error").textContent = run.error ?? "";
  $("step-rows").replaceChildren(
    ...run.steps.map((s) =>
      el("tr", { "data-step": s.name }, el("td", {}, s.name), el("td", {}, badge(s.status)), el("td", {}, s.attempt ? `${s.attempt}/${s.retries + 1}` : ""), el("td", {}, s.error ?? (Object.keys(s.outputs).length ? JSON.stringify(s.outputs) : ""))),
    ),
  );
  const metrics = Object.entries(run.metrics).map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`);
  $("run-metrics").textContent = metrics.length ? `metrics: ${metrics.join(", ")}` : "";
  $("run-artifacts").replaceChildren(
    ...run.artifacts.map((a) => el("li", {}, el("a", { href: `/api/workflows/runs/${run.id}/artifacts/${a.id}`, download: a.name }, `${a.step}.${a.name}`), ` (${a.type}, ${a.size} B)`)),
  );
  $("cancel-run").hidden = FINAL.has(run.status);
}

async function select(runId) {
  selected = runId;
  clearTimeout(timer);
  const run = await api(`/api/workflows/runs/${runId}`);
  if (selected !== runId) return;
  showRun(run);
  // A run that just ended may still have a step stopping (within a heartbeat): follow it to its end too.
  const settled = FINAL.has(run.status) && !run.steps.some((s) => s.status === "running");
  if (!settled) {
    timer = setTimeout(() => select(runId), 700);
  } else {
    loadRuns();
  }
}

$("pipeline").addEventListener("change", (e) => describe(pipelines.find((p) => p.name === e.target.value)));

$("run-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  let params;
  try {
    params = JSON.parse($("params").value || "{}");
  } catch {
    toast("Parameters must be a JSON object", "error");
    return;
  }
  const body = { pipeline: $("pipeline").value, params };
  if ($("experiment").value) body.experiment = $("experiment").value;
  try {
    const run = await api("/api/workflows/runs", { method: "POST", json: body });
    toast(`Run ${run.id.slice(0, 12)} started`);
    await loadRuns();
    select(run.id);
  } catch (err) {
    toast(err.message, "error");
  }
});

$("cancel-run").addEventListener("click", async () => {
  try {
    showRun(await api(`/api/workflows/runs/${selected}/cancel`, { method: "POST" }));
    loadRuns();
  } catch (err) {
    toast(err.message, "error");
  }
});

loadPipelines().catch((err) => toast(err.message, "error"));
loadRuns().catch((err) => toast(err.message, "error"));
