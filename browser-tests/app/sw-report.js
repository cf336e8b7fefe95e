// Imported by herald-sw.js after Herald's worker: reports the events the worker gets to the
// harness (lib/app-server.mjs, POST /__events), so a failing test shows what happened. It shows
// nothing and changes nothing; Herald's listeners (registered first) do the work.
"use strict";

function report(type, fields) {
  return fetch("/__events", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(Object.assign({ type: type, source: "herald-sw" }, fields)),
  }).catch(function () {});
}

function describe(notification) {
  return { title: notification.title, body: notification.body, tag: notification.tag, data: notification.data };
}

self.addEventListener("push", function (event) {
  let text = null;
  try {
    text = event.data ? event.data.text() : null;
  } catch (e) {
    text = String(e);
  }
  event.waitUntil(report("push", { text: text }));
});

self.addEventListener("notificationclick", function (event) {
  event.waitUntil(report("notificationclick", { action: event.action, notification: describe(event.notification) }));
});

self.addEventListener("notificationclose", function (event) {
  event.waitUntil(report("notificationclose", { notification: describe(event.notification) }));
});

self.addEventListener("pushsubscriptionchange", function (event) {
  event.waitUntil(
    report("pushsubscriptionchange", {
      oldSubscription: event.oldSubscription ? event.oldSubscription.toJSON() : null,
      newSubscription: event.newSubscription ? event.newSubscription.toJSON() : null,
    }),
  );
});
