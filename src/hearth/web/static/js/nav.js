// Every signed-in page: the unread count beside "Notifications" in the navigation bar, refreshed when a
// push arrives (the push worker tells open pages) and when the Notifications page changes it.
import { api } from "./api.js";

const link = document.querySelector('header nav a[href="/notifications"]');

/** Show `count` unread notifications on the navigation bar (nothing at 0). */
export function setUnreadBadge(count) {
  if (!link) return;
  let badge = link.querySelector(".badge");
  if (!badge) {
    badge = document.createElement("span");
    badge.className = "badge nav-badge";
    link.append(" ", badge);
  }
  badge.dataset.count = String(count);
  badge.textContent = String(count);
  badge.hidden = count === 0;
  badge.setAttribute("aria-label", `${count} unread`);
}

export async function refreshUnreadBadge() {
  try {
    const inbox = await api("/api/notify/inbox?unread=true&limit=1");
    setUnreadBadge(inbox.unread);
  } catch {
    /* the badge is a hint: a failed count leaves the page as it is */
  }
}

navigator.serviceWorker?.addEventListener("message", (event) => {
  if (event.data?.type === "hearth-push") refreshUnreadBadge();
});

if (link) refreshUnreadBadge();
