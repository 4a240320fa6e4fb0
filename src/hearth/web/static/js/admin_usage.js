// Admin: usage per key — the usage ledger (/api/admin/usage) for a range of days, summed per key, with the
// key's name from /api/admin/keys (a password session's usage is "web sign-in").
import { api } from "./api.js";
import { el, toast } from "./dom.js";

const $ = (id) => document.getElementById(id);
const day = (d) => d.toISOString().slice(0, 10);

let keys = new Map();

function keyName(id) {
  if (!id) return "none (the platform's own calls)";
  if (id.startsWith("web:")) return "web sign-in (password)";
  const k = keys.get(id);
  return k ? `${k.prefix}… ${k.name || ""}`.trim() + (k.revoked_at ? " (revoked)" : "") : id;
}

async function load() {
  const params = new URLSearchParams({ since: $("usage-since").value, until: $("usage-until").value });
  if ($("usage-user").value.trim()) params.set("user", $("usage-user").value.trim());
  const report = await api(`/api/admin/usage?${params}`);
  const perKey = new Map();
  for (const line of report.data) {
    const id = `${line.user_id}|${line.key_id ?? ""}`;
    const sum = perKey.get(id) ?? { user: line.username ?? line.user_id, key: line.key_id, requests: 0, failures: 0, prompt: 0, completion: 0, aliases: new Set() };
    sum.requests += line.requests;
    sum.failures += line.failures;
    sum.prompt += line.prompt_tokens;
    sum.completion += line.completion_tokens;
    sum.aliases.add(line.alias);
    perKey.set(id, sum);
  }
  const rows = [...perKey.values()].sort((a, b) => b.requests - a.requests);
  $("usage-rows").replaceChildren(
    ...(rows.length
      ? rows.map((s) =>
          el(
            "tr",
            { dataset: { user: s.user, key: s.key ?? "" } },
            el("td", {}, s.user),
            el("td", {}, keyName(s.key)),
            el("td", {}, s.requests.toLocaleString()),
            el("td", {}, s.failures.toLocaleString()),
            el("td", {}, s.prompt.toLocaleString()),
            el("td", {}, s.completion.toLocaleString()),
            el("td", {}, [...s.aliases].sort().join(", ")),
          ),
        )
      : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No usage in these days."))]),
  );
  const t = report.totals;
  $("usage-summary").textContent = `${t.requests.toLocaleString()} requests (${t.failures.toLocaleString()} failed), ${t.prompt_tokens.toLocaleString()} prompt and ${t.completion_tokens.toLocaleString()} completion tokens, by ${rows.length} key(s).`;
}

$("usage-form").addEventListener("submit", (e) => {
  e.preventDefault();
  load().catch((err) => toast(err.message, "error"));
});

const today = new Date();
$("usage-until").value = day(today);
$("usage-since").value = day(new Date(today.getTime() - 6 * 86400000));
api("/api/admin/keys")
  .then((list) => (keys = new Map(list.data.map((k) => [k.id, k]))))
  .catch(() => {})
  .then(load)
  .catch((e) => toast(e.message, "error"));
