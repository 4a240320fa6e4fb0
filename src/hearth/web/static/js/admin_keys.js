// Admin: API keys — list, create (the new key shown once), revoke.
import { api } from "./api.js";
import { el, toast, when } from "./dom.js";

const $ = (id) => document.getElementById(id);

async function loadUsers() {
  const users = (await api("/api/admin/users")).data.filter((u) => !u.disabled);
  $("key-user").replaceChildren(...users.map((u) => el("option", { value: u.username }, u.username)));
}

async function loadKeys() {
  const keys = (await api("/api/admin/keys")).data.reverse();
  $("key-rows").replaceChildren(
    ...keys.map((k) =>
      el(
        "tr",
        { dataset: { id: k.id, status: k.revoked_at ? "revoked" : "active" } },
        el("td", {}, el("code", {}, `${k.prefix}…`)),
        el("td", {}, k.username),
        el("td", {}, k.name || "—"),
        el("td", {}, k.priority),
        el("td", {}, when(k.created_at)),
        el("td", {}, when(k.last_used_at)),
        el("td", {}, el("span", { class: `status status-${k.revoked_at ? "failed" : "indexed"}` }, k.revoked_at ? "revoked" : "active")),
        el("td", {}, k.revoked_at ? null : el("button", { type: "button", class: "danger small", "aria-label": `Revoke key ${k.prefix} of ${k.username}`, onclick: () => revoke(k) }, "Revoke")),
      ),
    ),
  );
}

async function revoke(k) {
  if (!confirm(`Revoke key ${k.prefix}… of ${k.username}? Programs using it stop working at once.`)) return;
  try {
    await api(`/api/admin/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
    toast("Key revoked");
    loadKeys();
  } catch (e) {
    toast(e.message, "error");
  }
}

$("key-create").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { user: $("key-user").value, name: $("key-name").value.trim() };
  if ($("key-priority").value) body.priority = $("key-priority").value;
  try {
    const created = await api("/api/admin/keys", { method: "POST", json: body });
    $("new-key-user").textContent = created.username;
    $("new-key-value").textContent = created.key;
    $("new-key").hidden = false;
    $("key-name").value = "";
    $("new-key-copy").focus();
    loadKeys();
  } catch (err) {
    toast(err.message, "error");
  }
});

$("new-key-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("new-key-value").textContent);
    toast("Copied");
  } catch {
    getSelection().selectAllChildren($("new-key-value"));
    toast("Press Ctrl+C to copy");
  }
});

Promise.all([loadUsers(), loadKeys()]).catch((e) => toast(e.message, "error"));
