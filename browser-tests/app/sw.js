// The test application's service worker. It shows the JSON payload Herald pushes
// ({title, body, tag, data, ...}) and reports every event to the harness (POST /__events on its
// own origin), so tests can assert on what the worker saw.
"use strict";

function report(type, fields) {
  return fetch("/__events", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(Object.assign({ type: type, source: "sw" }, fields)),
  }).catch(function () {});
}

function b64url(buffer) {
  if (!buffer) return null;
  const bytes = new Uint8Array(buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function describe(notification) {
  return {
    title: notification.title,
    body: notification.body,
    tag: notification.tag,
    data: notification.data,
  };
}

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("push", function (event) {
  let payload = null;
  let text = null;
  if (event.data) {
    try {
      payload = event.data.json();
    } catch (e) {
      text = event.data.text();
    }
  }
  const title = (payload && payload.title) || "Notification";
  const options = {
    body: (payload && payload.body) || "",
    tag: (payload && payload.tag) || undefined,
    actions: (payload && Array.isArray(payload.actions) && payload.actions) || undefined,
    requireInteraction: !!(payload && payload.data && payload.data.requireInteraction),
    data: { payload: payload },
  };
  event.waitUntil(
    report("push", { payload: payload, text: text })
      .then(function () {
        return self.registration.showNotification(title, options);
      })
      .then(function () {
        return report("shown", { title: title, body: options.body });
      }),
  );
});

// Reports the click; when the payload has a `url` (as Herald's content does), opens it the way
// Herald's own worker does and reports the window client it got (or the error).
self.addEventListener("notificationclick", function (event) {
  const payload = event.notification.data && event.notification.data.payload;
  const url = payload && payload.url;
  event.waitUntil(
    report("notificationclick", { action: event.action, notification: describe(event.notification) }).then(
      function () {
        if (!url) return undefined;
        return self.clients.openWindow(url).then(
          function (client) {
            return report("openWindow", { url: url, client: client ? { url: client.url, type: client.type } : null });
          },
          function (err) {
            return report("openWindow", { url: url, error: String(err) });
          },
        );
      },
    ),
  );
});

self.addEventListener("notificationclose", function (event) {
  event.waitUntil(report("notificationclose", { notification: describe(event.notification) }));
});

// The push service dropped this subscription (Firefox: the server answered a new UAID). Report
// what the event carries, then resubscribe with the same VAPID key, as an application would.
self.addEventListener("pushsubscriptionchange", function (event) {
  event.waitUntil(
    (async function () {
      const old = event.oldSubscription || null;
      const fresh = event.newSubscription || null;
      const current = await self.registration.pushManager.getSubscription();
      const key = old && old.options ? old.options.applicationServerKey : null;
      await report("pushsubscriptionchange", {
        hasOldSubscriptionAttr: "oldSubscription" in event,
        hasNewSubscriptionAttr: "newSubscription" in event,
        oldSubscription: old ? old.toJSON() : null,
        oldApplicationServerKey: b64url(key),
        newSubscription: fresh ? fresh.toJSON() : null,
        currentSubscription: current ? current.toJSON() : null,
      });
      let renewed = null;
      let error = null;
      try {
        if (!key) throw new Error("no oldSubscription.options.applicationServerKey to resubscribe with");
        const sub = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
        renewed = sub.toJSON();
      } catch (e) {
        error = String(e);
      }
      await report("resubscribed", { subscription: renewed, error: error });
    })(),
  );
});
