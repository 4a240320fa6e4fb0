// Tips: the next tip and feedback on it, consents, the active context, connectors and the agent registry.
import { api } from "./api.js";
import { el, toast } from "./dom.js";

const $ = (id) => document.getElementById(id);
let tip = null;

function showTip(t) {
  tip = t;
  $("tip-text").textContent = t ? t.text : "No tip right now.";
  const how = t && (t.fallback ? `fallback (${t.fallback_reason})` : t.model);
  $("tip-meta").textContent = t ? `From ${t.contributing_agents.join(", ")} · ${how} · ${Math.round(t.latency_ms)} ms` : "";
  for (const id of ["done", "snooze", "dismiss"]) $(id).disabled = !t;
}

async function nextTip() {
  $("next").disabled = true;
  try {
    showTip(await api("/api/tips/next", { method: "POST", json: {} }));
  } catch (err) {
    showTip(null);
    toast(err.message, err.code === "no_tip" ? "info" : "error");
  } finally {
    $("next").disabled = false;
  }
  loadAgents();
}

async function feedback(action) {
  if (!tip) return;
  const json = { action };
  if (action === "snooze") json.until = new Date(Date.now() + Number($("snooze-for").value) * 3600e3).toISOString();
  try {
    const out = await api(`/api/tips/${tip.id}/feedback`, { method: "POST", json });
    toast(out.source_error ? `${action}: ${out.source_error}` : `${action}${out.source_closed ? " (also at its source)" : ""}`);
    showTip(null);
  } catch (err) {
    toast(err.message, "error");
  }
}

async function loadProfile() {
  const profile = await api("/api/tips/profile");
  $("consents").replaceChildren(
    ...profile.consents.map((c) => {
      const box = el("input", { type: "checkbox", id: `consent-${c.key}`, checked: c.granted });
      box.addEventListener("change", async () => {
        try {
          await api(`/api/tips/profile/consents/${c.key}`, { method: "PUT", json: { granted: box.checked } });
          toast(`${c.key} ${box.checked ? "granted" : "revoked"}`);
          loadAgents();
        } catch (err) {
          box.checked = !box.checked;
          toast(err.message, "error");
        }
      });
      return el("li", {}, box, " ", el("label", { for: box.id }, el("strong", {}, c.key), ` — ${c.description}`));
    }),
  );
  $("context").replaceChildren(
    el("option", { value: "" }, "none"),
    ...profile.contexts.map((c) => el("option", { value: c.name, selected: c.active }, c.name)),
  );
}

async function loadConnectors(rows) {
  rows = rows ?? (await api("/api/tips/connectors"));
  $("connectors").replaceChildren(
    ...rows.map((c) =>
      el(
        "tr",
        {},
        el("td", {}, c.kind),
        el("td", {}, c.name),
        el("td", {}, c.status),
        el("td", {}, Object.entries(c.signals).map(([k, n]) => `${k} ${n}`).join(", ") || "-"),
        el("td", {}, c.last_error ?? ""),
      ),
    ),
  );
}

async function loadAgents() {
  const agents = await api("/api/tips/agents");
  $("agents").replaceChildren(
    ...agents.map((a) =>
      el(
        "tr",
        {},
        el("td", {}, a.id),
        el("td", {}, a.description),
        el("td", {}, a.consents.join(", ") || "-"),
        el("td", {}, a.eligible ? "yes" : `no: ${a.reason}`),
      ),
    ),
  );
}

$("next").addEventListener("click", nextTip);
for (const action of ["done", "snooze", "dismiss"]) $(action).addEventListener("click", () => feedback(action));

$("context").addEventListener("change", async () => {
  try {
    await api("/api/tips/profile/active-context", { method: "PUT", json: { name: $("context").value || null } });
    toast(`Context: ${$("context").value || "none"}`);
    loadAgents();
  } catch (err) {
    toast(err.message, "error");
  }
});

$("context-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("context-name").value.trim();
  if (!name) return;
  try {
    await api(`/api/tips/profile/contexts/${encodeURIComponent(name)}`, { method: "PUT", json: {} });
    $("context-name").value = "";
    await loadProfile();
  } catch (err) {
    toast(err.message, "error");
  }
});

$("connect-kind").addEventListener("change", () => {
  const todoist = $("connect-kind").value === "todoist";
  $("connect-value-label").firstChild.textContent = todoist ? "API token " : "File (under the tips folder) ";
  $("connect-value").type = todoist ? "password" : "text";
});

$("connect-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const kind = $("connect-kind").value;
  const value = $("connect-value").value;
  try {
    await api("/api/tips/connectors", { method: "POST", json: kind === "todoist" ? { kind, token: value } : { kind, path: value } });
    $("connect-value").value = "";
    toast(`Connected ${kind}`);
    await loadConnectors();
  } catch (err) {
    toast(err.message, "error");
  }
});

$("sync").addEventListener("click", async () => {
  try {
    await loadConnectors(await api("/api/tips/sync", { method: "POST" }));
    toast("Synced");
  } catch (err) {
    toast(err.message, "error");
  }
});

await Promise.all([loadProfile(), loadConnectors(), loadAgents()]);
