// Admin: models — every alias, its deployments with health and cooldowns (/v1/models' cards, which
// /api/admin/models also carries), and live request rates: /metrics is read every 5 s and the counters'
// growth divided by the time between two reads.
import { api } from "./api.js";
import { el, toast } from "./dom.js";

const $ = (id) => document.getElementById(id);
const EVERY_MS = 5000;
let previous = null; // {at, requests: Map(deployment → count), errors: Map}

/** Prometheus text → [{name, labels, value}] for the few series this screen reads. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^(hearth_gateway_(?:requests_total|in_flight|queue_depth))\{([^}]*)\} ([0-9.eE+-]+|NaN)$/);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sample(series) {
  const requests = new Map();
  const errors = new Map();
  const inFlight = new Map();
  const queued = new Map();
  for (const s of series) {
    const d = s.labels.deployment;
    if (s.name === "hearth_gateway_requests_total") {
      // Per alias and deployment: aliases may share a deployment (chat, judge and tip-generator do).
      const key = `${s.labels.alias}|${d}`;
      requests.set(key, (requests.get(key) ?? 0) + s.value);
      if (Number(s.labels.status) >= 400) errors.set(key, (errors.get(key) ?? 0) + s.value);
    } else if (s.name === "hearth_gateway_in_flight") inFlight.set(d, s.value);
    else if (s.name === "hearth_gateway_queue_depth") queued.set(d, s.value);
  }
  return { at: performance.now(), requests, errors, inFlight, queued };
}

function rate(now, map, key) {
  if (!previous) return null;
  const seconds = (now.at - previous.at) / 1000;
  return seconds > 0 ? Math.max(0, ((now[map].get(key) ?? 0) - (previous[map].get(key) ?? 0)) / seconds) : null;
}

function health(h) {
  const cls = h.status === "ok" ? "indexed" : h.status === "failing" ? "pending" : "failed";
  const text = h.status === "cooling_down" ? `cooling down, ${Math.ceil(h.cooldown_seconds_left)} s left` : h.status.replace("_", " ");
  return el("span", { class: `status status-${cls}` }, text);
}

function card(alias, now) {
  const rows = alias.deployment_details.map((d) => {
    const perSecond = rate(now, "requests", `${alias.id}|${d.deployment}`);
    const failing = rate(now, "errors", `${alias.id}|${d.deployment}`);
    return el(
      "tr",
      { dataset: { deployment: d.deployment, health: d.health.status } },
      el("td", {}, el("code", {}, d.deployment), alias.serving === d.deployment ? el("span", { class: "chip" }, "serving") : null),
      el("td", {}, d.model, el("br"), el("span", { class: "muted small" }, d.engine)),
      el("td", {}, health(d.health)),
      el("td", { class: "rate" }, perSecond == null ? "…" : `${perSecond.toFixed(2)}/s` + (failing ? ` (${failing.toFixed(2)}/s failed)` : "")),
      el("td", {}, `${now.inFlight.get(d.deployment) ?? 0} / ${now.queued.get(d.deployment) ?? 0}`), // shared by its aliases
      el("td", { class: "small" }, d.health.last_error ?? "—"),
    );
  });
  return el(
    "section",
    { class: "card", dataset: { alias: alias.id, status: alias.status }, "aria-labelledby": `alias-${alias.id}` },
    el("h2", { id: `alias-${alias.id}`, class: "h2" }, alias.id, " ", el("span", { class: `status status-${alias.status === "ok" ? "indexed" : "failed"}` }, alias.status), " ", el("span", { class: "muted small" }, alias.kind)),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "table" },
        el("caption", { class: "visually-hidden" }, `Deployments of ${alias.id}`),
        el("thead", {}, el("tr", {}, ...["Deployment", "Model", "Health", "Requests", "Running / queued", "Last error"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...rows),
      ),
    ),
  );
}

async function refresh() {
  const [catalogue, metrics] = await Promise.all([
    api("/api/admin/models"),
    fetch("/metrics", { credentials: "same-origin" }).then((r) => (r.ok ? r.text() : "")),
  ]);
  const now = sample(parseMetrics(metrics));
  // A note (the demo model's) is said once, not on every alias it applies to.
  const notes = [...new Set(catalogue.models.map((a) => a.note).filter(Boolean))];
  $("alias-notes").replaceChildren(...notes.map((n) => el("p", { class: "banner info small" }, n)));
  $("alias-cards").replaceChildren(...catalogue.models.map((a) => card(a, now)));
  $("models-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  previous = now;
}

async function loop() {
  try {
    await refresh();
  } catch (e) {
    toast(e.message, "error");
  }
  setTimeout(loop, EVERY_MS);
}
loop();
