// The service worker for web push. The notify context encrypts {id, topic, title, body, url} for this
// browser's subscription (docs/notify.md); this worker shows it as a system notification, tells any open
// Hearth page (so its inbox and badge refresh), and opens the notification's link when it is clicked.
// Registered by notifications.js with its default scope: a push needs no control over pages.

const SAME_SITE_PATH = /^\/(?!\/)/; // a path of this site, never a protocol-relative //host

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { body: event.data ? event.data.text() : "" }; // not our JSON: still show what came
  }
  const title = message.title || "Hearth";
  const url = typeof message.url === "string" && SAME_SITE_PATH.test(message.url) ? message.url : "/notifications";
  event.waitUntil(
    Promise.all([
      self.registration.showNotification(title, {
        body: message.body || "",
        tag: message.id || undefined, // the same notification sent twice replaces itself
        data: { url, id: message.id ?? null },
      }),
      self.clients
        .matchAll({ type: "window", includeUncontrolled: true })
        .then((pages) => pages.forEach((page) => page.postMessage({ type: "hearth-push", message }))),
    ]),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/notifications", self.location.origin).href;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((pages) => {
      const open = pages.find((page) => page.url === url);
      return open ? open.focus() : self.clients.openWindow(url);
    }),
  );
});
