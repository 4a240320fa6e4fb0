// Notifications: the in-app inbox (mark read), a test notification, and where and when to be notified.
import { api } from "./api.js";
import { el, toast, when } from "./dom.js";

const $ = (id) => document.getElementById(id);

async function loadInbox() {
  const inbox = await api("/api/notify/inbox?limit=100");
  const unread = $("unread");
  unread.textContent = `${inbox.unread} unread`;
  unread.dataset.count = String(inbox.unread);
  $("inbox-empty").hidden = inbox.data.length > 0;
  $("inbox").replaceChildren(
    ...inbox.data.map((item) =>
      el(
        "li",
        { class: "inbox-item", dataset: { id: item.id, read: item.read_at ? "yes" : "no" } },
        el("strong", {}, item.title),
        el("p", {}, item.body),
        // Only this site's paths and http(s) links: never javascript: or a protocol-relative //host.
        item.url && /^(https?:\/\/|\/(?!\/))/.test(item.url) ? el("a", { href: item.url }, item.url) : null,
        el("small", {}, when(item.created_at), " · "),
        item.read_at
          ? el("small", {}, "read")
          : el("button", { type: "button", class: "link", onclick: () => markRead(item.id) }, "Mark read"),
      ),
    ),
  );
}

async function markRead(id) {
  try {
    await api(`/api/notify/inbox/${encodeURIComponent(id)}/read`, { method: "POST" });
    await loadInbox();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function loadPrefs() {
  const [prefs, subs] = await Promise.all([api("/api/notify/preferences"), api("/api/notify/subscriptions")]);
  for (const box of document.querySelectorAll('input[name="channel"]')) {
    box.checked = prefs.channels.includes(box.value);
    if (box.value === "email") box.disabled = !prefs.email_available;
  }
  $("push-count").textContent = String(subs.length);
  $("email").value = prefs.email ?? "";
  $("time-zone").value = prefs.time_zone;
  $("quiet-start").value = prefs.quiet_hours?.start ?? "";
  $("quiet-end").value = prefs.quiet_hours?.end ?? "";
}

$("prefs").addEventListener("submit", async (e) => {
  e.preventDefault();
  const start = $("quiet-start").value;
  const end = $("quiet-end").value;
  const body = {
    channels: [...document.querySelectorAll('input[name="channel"]:checked')].map((b) => b.value),
    email: $("email").value.trim() || null,
    time_zone: $("time-zone").value.trim(),
    quiet_hours: start && end ? { start, end } : null,
  };
  try {
    await api("/api/notify/preferences", { method: "PUT", json: body });
    await loadPrefs(); // what the server stored (channels in its order)
    toast("Saved");
  } catch (err) {
    toast(err.message, "error"); // the form keeps what was typed, to be corrected
  }
});

$("mark-all").addEventListener("click", async () => {
  await api("/api/notify/inbox/read", { method: "POST" });
  await loadInbox();
});

$("send-test").addEventListener("click", async () => {
  try {
    const out = await api("/api/notify/test", { method: "POST", json: {} });
    toast(out.deliveries.map((d) => `${d.channel}: ${d.status}`).join(", ") || "No channel chosen");
  } catch (err) {
    toast(err.message, "error");
  }
  await loadInbox();
});

await Promise.all([loadInbox(), loadPrefs()]);
