// Admin: users — list, create (optionally with a password), reset a password, disable and enable.
import { api } from "./api.js";
import { el, toast } from "./dom.js";

const $ = (id) => document.getElementById(id);
const me = document.querySelector(".me a")?.textContent ?? "";

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
        el("td", {}, el("span", { class: `status status-${u.disabled ? "failed" : "indexed"}` }, u.disabled ? "disabled" : "active")),
        el(
          "td",
          { class: "actions" },
          el("button", { type: "button", class: "small", "aria-label": `Reset the password of ${u.username}`, onclick: () => setPassword(u.username) }, "Reset password"),
          u.username === me
            ? null
            : el("button", { type: "button", class: `small${u.disabled ? "" : " danger"}`, "aria-label": `${u.disabled ? "Enable" : "Disable"} ${u.username}`, onclick: () => setDisabled(u, !u.disabled) }, u.disabled ? "Enable" : "Disable"),
        ),
      ),
    ),
  );
}

async function setDisabled(user, disabled) {
  if (disabled && !confirm(`Disable ${user.username}? Their keys and sign-ins stop working at once.`)) return;
  try {
    await api(`/api/admin/users/${encodeURIComponent(user.username)}`, { method: "PATCH", json: { disabled } });
    toast(`${user.username} ${disabled ? "disabled" : "enabled"}`);
    loadUsers();
  } catch (e) {
    toast(e.message, "error");
  }
}

async function setPassword(username, password) {
  password ??= prompt(`New password for ${username} (at least 8 characters)`);
  if (!password) return;
  try {
    await api(`/api/admin/users/${encodeURIComponent(username)}/password`, { method: "PUT", json: { password } });
    toast(`Password set for ${username}; their password sign-ins ended`);
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
