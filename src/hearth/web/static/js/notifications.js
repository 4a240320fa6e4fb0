// Notifications: the in-app inbox (mark read), a test notification, and where and when to be notified.
import { api } from "./api.js";
import { el, toast, when } from "./dom.js";
import { setUnreadBadge } from "./nav.js";

const $ = (id) => document.getElementById(id);

async function loadInbox() {
  const inbox = await api("/api/notify/inbox?limit=100");
  const unread = $("unread");
  unread.textContent = `${inbox.unread} unread`;
  unread.dataset.count = String(inbox.unread);
  setUnreadBadge(inbox.unread);
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

// Browser push: a service worker (push-sw.js) receives what the server sends to this browser's
// subscription. Subscribing asks the browser's own push service (its vendor's, over the internet) for an
// endpoint; the endpoint and keys then go to /api/notify/subscriptions.
const PUSH_WORKER = "/static/app/js/push-sw.js";
const pushSupported = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

function applicationServerKey(base64url) {
  const padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

async function activeWorker() {
  const registration = await navigator.serviceWorker.register(PUSH_WORKER);
  const worker = registration.installing || registration.waiting;
  if (worker && !registration.active) {
    // The worker's scope is its own folder, not this page, so navigator.serviceWorker.ready never fires here.
    await new Promise((resolve) => {
      worker.addEventListener("statechange", () => worker.state === "activated" && resolve());
    });
  }
  return registration;
}

async function browserSubscription() {
  const registration = await navigator.serviceWorker.getRegistration(PUSH_WORKER);
  return registration ? registration.pushManager.getSubscription() : null;
}

async function showPushState() {
  if (!pushSupported()) {
    $("push-on").disabled = true;
    $("push-status").textContent = "This browser cannot receive push notifications.";
    return;
  }
  const subscription = await browserSubscription();
  $("push-on").hidden = Boolean(subscription);
  $("push-off").hidden = !subscription;
  $("push-status").textContent =
    Notification.permission === "denied"
      ? "Notifications are blocked for this site in the browser's settings."
      : subscription
        ? "This browser is subscribed."
        : "";
}

async function turnOnPush() {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    throw new Error("Notifications are not allowed for this site: allow them in the browser's site settings.");
  }
  const registration = await activeWorker();
  const { public_key } = await api("/api/notify/vapid-key");
  let subscription;
  try {
    subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: applicationServerKey(public_key),
    });
  } catch (err) {
    throw new Error(
      `The browser's push service refused to subscribe (${err.message}). ` +
        "Browsers reach their vendor's push service over the internet: without it, push cannot work here.",
    );
  }
  try {
    await api("/api/notify/subscriptions", { method: "POST", json: subscription.toJSON() });
  } catch (err) {
    await subscription.unsubscribe(); // never leave the browser subscribed to what the server does not know
    throw err;
  }
  const prefs = await api("/api/notify/preferences");
  if (!prefs.channels.includes("webpush")) {
    await api("/api/notify/preferences", { method: "PUT", json: { channels: [...prefs.channels, "webpush"] } });
  }
}

async function turnOffPush() {
  const subscription = await browserSubscription();
  if (!subscription) return;
  const stored = (await api("/api/notify/subscriptions")).find((s) => s.endpoint === subscription.endpoint);
  if (stored) await api(`/api/notify/subscriptions/${encodeURIComponent(stored.id)}`, { method: "DELETE" });
  await subscription.unsubscribe();
}

for (const [id, action, done] of [
  ["push-on", turnOnPush, "Push is on in this browser"],
  ["push-off", turnOffPush, "Push is off in this browser"],
]) {
  $(id).addEventListener("click", async () => {
    $(id).disabled = true;
    try {
      await action();
      toast(done);
    } catch (err) {
      toast(err.message, "error");
    } finally {
      $(id).disabled = false;
      await Promise.all([loadPrefs(), showPushState()]);
    }
  });
}

// A push that arrives while this page is open shows in the inbox at once.
navigator.serviceWorker?.addEventListener("message", (event) => {
  if (event.data?.type === "hearth-push") loadInbox();
});

await Promise.all([loadInbox(), loadPrefs(), showPushState()]);
