// The test page's side of the harness. Tests call into `window.harness` through Marionette:
//
//   await harness.ready                          the service worker (/sw.js) is active; on
//                                                sdk.html (data-harness="sdk"): Herald's SDK
//                                                is loaded (the SDK registers its own worker)
//   harness.arm(action, args)                    the next click on #act runs `action(args)`:
//                                                a name from `actions` below or the source of
//                                                an async function expression
//   (the test clicks #act with WebDriver:ElementClick: a trusted click with user activation)
//   await harness.clickResult()                  {ok, value | error, userActivation}
//
// Running the action inside the click handler is what makes APIs gated on a user gesture
// (Notification.requestPermission, pushManager.subscribe) behave as for a real user.
"use strict";

/** Records an event with the harness (lib/app-server.mjs keeps them). */
function report(type, fields) {
  return fetch("/__events", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(Object.assign({ type: type, source: "page" }, fields)),
  }).catch(function () {});
}

/** Built-in click actions. */
const actions = {
  /** Asks for notification permission and subscribes to Push with the given VAPID key. */
  subscribe: async function ({ applicationServerKey }) {
    const permission = await Notification.requestPermission();
    const registration = await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: applicationServerKey,
    });
    return { permission: permission, subscription: subscription.toJSON() };
  },
};

let armed = null;
let result = null;
let settle = null;

const sdkPage = document.documentElement.dataset.harness === "sdk";

window.harness = {
  ready: sdkPage
    ? Promise.resolve().then(function () {
        if (typeof window.Herald === "undefined") throw new Error("Herald's SDK (/sdk/herald.js) did not load");
        return true;
      })
    : navigator.serviceWorker
        .register("/sw.js", { scope: "/" })
        .then(function () {
          return navigator.serviceWorker.ready;
        })
        .then(function () {
          return true;
        }),

  /** The SDK's stored state (IndexedDB herald/state/<key>), or null. */
  heraldState: function (key) {
    return new Promise(function (resolve, reject) {
      const open = indexedDB.open("herald", 1);
      open.onupgradeneeded = function () {
        if (!open.result.objectStoreNames.contains("state")) open.result.createObjectStore("state");
      };
      open.onerror = function () {
        reject(open.error);
      };
      open.onsuccess = function () {
        const db = open.result;
        const req = db.transaction("state", "readonly").objectStore("state").get(key || "current");
        req.onsuccess = function () {
          db.close();
          resolve(req.result || null);
        };
        req.onerror = function () {
          db.close();
          reject(req.error);
        };
      };
    });
  },

  arm: function (action, args) {
    const fn = actions[action] || (0, eval)("(" + action + ")");
    armed = { fn: fn, args: args };
    result = new Promise(function (resolve) {
      settle = resolve;
    });
  },

  clickResult: function () {
    if (!result) return Promise.reject(new Error("nothing armed"));
    return result;
  },

  /** The notifications the worker's registration currently shows (title, body, tag, data). */
  notifications: async function () {
    const registration = await navigator.serviceWorker.ready;
    const list = await registration.getNotifications();
    return list.map(function (n) {
      return { title: n.title, body: n.body, tag: n.tag, data: n.data };
    });
  },

  /** The current push subscription's JSON, or null. */
  subscription: async function () {
    const registration = await navigator.serviceWorker.ready;
    const sub = await registration.pushManager.getSubscription();
    return sub ? sub.toJSON() : null;
  },
};

document.getElementById("act").addEventListener("click", function () {
  const userActivation = navigator.userActivation ? navigator.userActivation.isActive : null;
  if (!armed) {
    report("click", { armed: false, userActivation: userActivation });
    return;
  }
  const { fn, args } = armed;
  armed = null;
  const done = settle;
  // The action starts synchronously inside the trusted click handler.
  Promise.resolve()
    .then(function () {
      return fn(args || {});
    })
    .then(
      function (value) {
        done({ ok: true, value: value, userActivation: userActivation });
      },
      function (err) {
        done({ ok: false, error: String((err && err.stack) || err), userActivation: userActivation });
      },
    );
});
