// Herald's service worker: shows the notifications Herald pushes (the JSON content of a send:
// title, body, icon, image, badge, tag, url, data, actions) and opens `url` on a click.
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("push", function (event) {
  var p = {};
  if (event.data) {
    try {
      p = event.data.json();
    } catch (e) {
      p = { body: event.data.text() };
    }
  }
  var options = {
    body: p.body || "",
    icon: p.icon,
    image: p.image,
    badge: typeof p.badge === "string" ? p.badge : undefined,
    tag: p.tag,
    data: { url: p.url, data: p.data },
    actions: Array.isArray(p.actions) ? p.actions : undefined
  };
  event.waitUntil(self.registration.showNotification(p.title || "Notification", options));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = event.notification.data && event.notification.data.url;
  if (url) event.waitUntil(self.clients.openWindow(url));
});
