// Planner: use case in words → the spec (every figure editable) → ranked options and a cost/latency chart
// → one option's manifests (copy, download) → deploy, which the server page disables with its reason when no
// cluster is configured (or the user is not an admin).
import { api } from "./api.js";
import { el, toast } from "./dom.js";
import { scatterChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const USE_CASES = [
  "chatbot_conversational", "code_completion", "code_generation_detailed", "translation", "content_generation",
  "summarization_short", "document_analysis_rag", "long_document_summarization", "research_legal_analysis",
];
const EXPERIENCES = ["instant", "conversational", "interactive", "deferred", "batch"];
// [path in the spec, label, kind, step]: what the form shows; the rest of the spec goes back unchanged.
const FIELDS = [
  ["use_case", "Use case", "choice", USE_CASES],
  ["experience_class", "Experience class", "choice", EXPERIENCES],
  ["traffic.prompt_tokens", "Prompt tokens", "int"],
  ["traffic.output_tokens", "Output tokens", "int"],
  ["slo.ttft_ms_p95", "TTFT p95 (ms)", "number"],
  ["slo.itl_ms_p95", "ITL p95 (ms)", "number"],
  ["slo.e2e_ms_p95", "E2E p95 (ms)", "number"],
  ["workload.users", "Users", "int"],
  ["workload.active_fraction", "Share active in the peak hour (0–1)", "number"],
  ["workload.requests_per_active_user_hour", "Requests per active user-hour", "number"],
  ["workload.peak_multiplier", "Peak multiplier", "number"],
  ["qps", "Peak requests/s (overrides the workload)", "optional"],
  ["budget_per_month", "Budget per month ($)", "optional"],
  ["preferred_gpus", "Preferred GPUs (comma-separated)", "list"],
];

let spec = null;
let manifestUrl = null;

const get = (obj, path) => path.split(".").reduce((o, k) => o?.[k], obj);
function set(obj, path, value) {
  const keys = path.split(".");
  const last = keys.pop();
  keys.reduce((o, k) => o[k], obj)[last] = value;
}
const money = (n) => `$${Math.round(n).toLocaleString()}`;
const ms = (n) => `${Math.round(n).toLocaleString()} ms`;

function fieldFor([path, label, kind, choices]) {
  const id = `spec-${path.replace(/\./g, "-")}`;
  const value = get(spec, path);
  let input;
  if (kind === "choice") {
    input = el("select", { id }, ...choices.map((c) => el("option", { value: c, selected: c === value }, c.replace(/_/g, " "))));
  } else if (kind === "list") {
    input = el("input", { id, value: (value ?? []).join(", "), autocomplete: "off" });
  } else {
    const step = kind === "int" ? "1" : "any";
    input = el("input", { id, type: "number", step, min: "0", value: value ?? "", required: kind !== "optional" });
  }
  return el("label", { class: "field" }, label, input);
}

function readSpec() {
  const edited = structuredClone(spec);
  for (const [path, , kind] of FIELDS) {
    const raw = $(`spec-${path.replace(/\./g, "-")}`).value.trim();
    if (kind === "choice") set(edited, path, raw);
    else if (kind === "list") set(edited, path, raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : []);
    else if (kind === "optional") set(edited, path, raw === "" ? null : Number(raw));
    else set(edited, path, Number(raw));
  }
  return edited;
}

$("intent-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const button = e.submitter ?? e.target.querySelector("button");
  button.disabled = true;
  try {
    const found = await api("/api/planner/intent", {
      method: "POST",
      json: { text: $("use-case").value.trim(), use_model: $("use-model").checked },
    });
    spec = found.spec;
    $("spec-source").textContent =
      `Read by the ${found.extracted_by === "model" ? "chat model" : "rule-based parser"}; about ${found.expected_qps.toFixed(2)} requests/s at peak. Change any figure, then find options.`;
    $("spec-fields").replaceChildren(...FIELDS.map(fieldFor));
    $("spec-section").hidden = false;
    $("options-section").hidden = true;
    $("manifest-section").hidden = true;
    $("spec-fields").querySelector("select, input")?.focus();
  } catch (err) {
    toast(err.message, "error");
  } finally {
    button.disabled = false;
  }
});

$("spec-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const button = e.submitter ?? e.target.querySelector("button");
  button.disabled = true;
  $("options-section").setAttribute("aria-busy", "true");
  try {
    spec = readSpec();
    const weights = Object.fromEntries(
      ["accuracy", "cost", "latency", "complexity"].map((k) => [k, Number($(`weight-${k}`).value)]),
    );
    const plan = await api("/api/planner/plan", { method: "POST", json: { spec, weights, limit: 10 } });
    showPlan(plan);
  } catch (err) {
    $("options-section").hidden = true;
    toast(err.message, "error");
  } finally {
    button.disabled = false;
    $("options-section").setAttribute("aria-busy", "false");
  }
});

const keyOf = (o) => [o.model_id, o.quantization, o.gpu, o.gpus_per_replica, o.replicas].join("|");

function showPlan(plan) {
  $("options-summary").textContent =
    `${plan.candidates_meeting_slo} of ${plan.candidates_evaluated} configurations meet the targets at ${plan.expected_qps.toFixed(2)} requests/s; ranked by the balanced score.` +
    (plan.notes.length ? ` ${plan.notes.join(" ")}` : "");
  $("option-rows").replaceChildren(
    ...plan.balanced.map((o) =>
      el(
        "tr",
        { dataset: { model: o.model_id, pareto: String(o.pareto) } },
        el("td", {}, o.rank),
        el("td", {}, o.model_id, el("br"), el("span", { class: "muted small" }, o.quantization)),
        el("td", {}, `${o.total_gpus} × ${o.gpu_product_label}`, el("br"), el("span", { class: "muted small" }, `${o.replicas} replica${o.replicas > 1 ? "s" : ""}`)),
        el("td", {}, money(o.monthly_cost)),
        el("td", {}, ms(o.ttft_ms_p95)),
        el("td", {}, ms(o.itl_ms_p95)),
        el("td", {}, ms(o.e2e_ms_p95)),
        el("td", {}, o.quality.toFixed(2)),
        el("td", {}, o.confidence),
        el("td", {}, el("button", { type: "button", class: "small", "aria-label": `Manifests for option ${o.rank}, ${o.model_id}`, onclick: () => showManifests(o) }, "Manifests")),
      ),
    ),
  );
  const seen = new Map();
  for (const list of [plan.balanced, plan.pareto, plan.cheapest, plan.fastest]) {
    for (const o of list) if (!seen.has(keyOf(o))) seen.set(keyOf(o), o);
  }
  const points = [...seen.values()].map((o) => ({
    x: o.e2e_ms_p95,
    y: o.monthly_cost,
    label: `${o.model_id} ${o.quantization}, ${o.total_gpus} × ${o.gpu}: ${money(o.monthly_cost)}/month, E2E p95 ${ms(o.e2e_ms_p95)}, quality ${o.quality.toFixed(1)}`,
  }));
  // The cost/latency front: no other option is both cheaper and faster. (The plan's own `pareto` flag also
  // weighs quality and simplicity, so it marks more options than a two-axis chart can show as a front.)
  let cheapest = Infinity;
  for (const p of [...points].sort((a, b) => a.x - b.x || a.y - b.y)) {
    p.highlight = p.y < cheapest;
    cheapest = Math.min(cheapest, p.y);
  }
  $("pareto-chart").replaceChildren(
    scatterChart(points, { xLabel: "E2E p95 (ms)", yLabel: "cost per month ($)", title: "Options: cost against latency" }),
  );
  $("options-section").hidden = false;
  $("manifest-section").hidden = true;
}

async function showManifests(option) {
  try {
    const built = await api("/api/planner/manifests", { method: "POST", json: { option } });
    $("manifest-yaml").textContent = built.yaml;
    if (manifestUrl) URL.revokeObjectURL(manifestUrl);
    manifestUrl = URL.createObjectURL(new Blob([built.yaml], { type: "application/yaml" }));
    $("manifest-download").href = manifestUrl;
    $("manifest-download").download = `${built.name}.yaml`;
    $("manifest-title").textContent = `Manifests: ${built.name} (namespace ${built.namespace})`;
    $("manifest-section").hidden = false;
    $("manifest-section").dataset.option = keyOf(option);
    $("manifest-section").option = option;
    $("manifest-copy").focus();
  } catch (err) {
    toast(err.message, "error");
  }
}

$("manifest-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("manifest-yaml").textContent);
    toast("Copied");
  } catch {
    getSelection().selectAllChildren($("manifest-yaml"));
    toast("Press Ctrl+C to copy");
  }
});

const blocker = document.querySelector(".planner").dataset.deployBlocker;
if (blocker) {
  $("deploy").disabled = true;
  $("deploy-alias").disabled = true;
  $("deploy-reason").textContent = `Deploy is off: ${blocker}`;
}

$("deploy-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const option = $("manifest-section").option;
  if (!option || blocker) return;
  $("deploy").disabled = true;
  $("deploy-reason").textContent = "Applying the manifests and waiting for the service to be Ready…";
  try {
    const done = await api("/api/planner/deploy", { method: "POST", json: { option, alias: $("deploy-alias").value.trim() } });
    $("deploy-reason").textContent = done.registered
      ? `Deployed ${done.namespace}/${done.name}; the alias ${done.alias} now routes to ${done.url}.`
      : `Applied ${done.applied.join(", ")}; not Ready yet, so no alias was registered.`;
  } catch (err) {
    $("deploy-reason").textContent = err.message;
  } finally {
    $("deploy").disabled = false;
  }
});
