// Admin: users — list, create (optionally with a password), reset a password.
import { api } from "./api.js";
import { el, toast } from "./dom.js";

const $ = (id) => document.getElementById(id);

async function loadUsers() {
  const users = (await api("/api/admin/users")).data;
  $("user-rows").replaceChildren(
    ...users.map((u) =>
      el(
        "tr",
        { dataset: { username: u.username } },
        el("td", {}, u.username),
        el("td", {}, u.role),
        el("td", {}, u.has_password ? "set" : "none"),
        el("td", {}, u.disabled ? "disabled" : "active"),
        el("td", {}, el("button", { type: "button", class: "small", "aria-label": `Set the password of ${u.username}`, onclick: () => setPassword(u.username) }, "Set password")),
      ),
    ),
  );
}

async function setPassword(username, password) {
  password ??= prompt(`New password for ${username} (at least 8 characters)`);
  if (!password) return;
  try {
    await api(`/api/admin/users/${encodeURIComponent(username)}/password`, { method: "PUT", json: { password } });
    toast(`Password set for ${username}`);
    loadUsers();
  } catch (e) {
    toast(e.message, "error");
  }
}

$("user-create").addEventListener("submit", async (e) => {
  e.preventDefault();
  const username = $("user-name").value.trim();
  try {
    await api("/api/admin/users", { method: "POST", json: { username, role: $("user-role").value } });
    if ($("user-password").value) await setPassword(username, $("user-password").value);
    e.target.reset();
    toast(`User ${username} created`);
    loadUsers();
  } catch (err) {
    toast(err.message, "error");
  }
});

loadUsers().catch((e) => toast(e.message, "error"));
