/*
 * Herald service worker: shows Web Push notifications sent by Herald, reports their receipts
 * (displayed / clicked / dismissed) and renews the subscription when the browser rotates it.
 *
 * Use it as the site's service worker as is (serve this file at /herald-sw.js on your origin),
 * or from your own worker:
 *
 *   self.HERALD_URL = "https://push.example.com";            // optional, see heraldBaseUrl()
 *   importScripts("https://push.example.com/sdk/herald-sw.js");
 *
 * Globals read (set them before importScripts):
 *   self.HERALD_URL         Herald's base URL; wins over every other source.
 *   self.HERALD_STANDALONE  true/false: whether to skipWaiting()/clients.claim() (default:
 *                           only when this file is the worker's own script).
 *   self.HERALD_DEFAULT_TITLE  title of notifications whose payload has none.
 * Exposes self.HeraldSW (parse, heraldBaseUrl, readState) for workers that need it.
 */
(function () {
  "use strict";
  if (self.HeraldSW) return; // imported twice: the listeners are already there

  const DB = "herald";
  const STORE = "state";

  /**
   * The state record of this worker's registration: `current` for the scope `/`, else
   * `current:<scope path>` (the SDK keys what it stores the same way, by the scope it registers).
   */
  function stateKey() {
    let path = "/";
    try {
      path = new URL(self.registration.scope).pathname;
    } catch (_) {
      path = "/";
    }
    return path === "/" ? "current" : "current:" + path;
  }

  const SDK_SUFFIX = "/sdk/herald-sw.js";

  /** The URL of this very script: from a stack trace, since importScripts has no currentScript. */
  const SCRIPT_URL = (() => {
    try {
      const m = /(https?:\/\/[^\s)]+?)(?::\d+){1,2}\)?\s*(?:\n|$)/.exec(new Error().stack || "");
      return m ? m[1] : null;
    } catch (_) {
      return null;
    }
  })();

  function stripHash(u) {
    return String(u).split("#")[0].split("?")[0];
  }

  /** Whether this file is the worker itself (not pulled in by an app's worker). */
  const STANDALONE =
    typeof self.HERALD_STANDALONE === "boolean"
      ? self.HERALD_STANDALONE
      : SCRIPT_URL
        ? stripHash(SCRIPT_URL) === stripHash(self.location.href)
        : /\/herald-sw\.js$/.test(self.location.pathname);

  // -- stored state (written by the SDK in the page) -------------------------------------------

  function idb(mode, fn) {
    return new Promise((resolve, reject) => {
      const open = self.indexedDB.open(DB, 1);
      open.onupgradeneeded = () => {
        if (!open.result.objectStoreNames.contains(STORE)) open.result.createObjectStore(STORE);
      };
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result;
        try {
          const tx = db.transaction(STORE, mode);
          const req = fn(tx.objectStore(STORE));
          tx.oncomplete = () => (db.close(), resolve(req.result));
          tx.onerror = tx.onabort = () => (db.close(), reject(tx.error || req.error));
        } catch (e) {
          db.close();
          reject(e);
        }
      };
    });
  }

  async function readState() {
    if (!self.indexedDB) return null;
    try {
      return (await idb("readonly", (s) => s.get(stateKey()))) || null;
    } catch (e) {
      console.debug("[herald] cannot read state:", e);
      return null;
    }
  }

  function writeState(state) {
    return idb("readwrite", (s) => s.put(state, stateKey()));
  }

  /**
   * Where Herald is, first match wins:
   *   1. self.HERALD_URL;
   *   2. the push payload's herald.url (Herald does not add it; a send's `web_push` object may);
   *   3. the `url` the SDK stored at subscribe time;
   *   4. this script's URL minus "/sdk/herald-sw.js" (importScripts straight from Herald).
   * null when none applies (receipts are then skipped).
   */
  async function heraldBaseUrl(payloadUrl, state) {
    if (self.HERALD_URL) return trim(self.HERALD_URL);
    if (payloadUrl && /^https?:\/\//.test(payloadUrl)) return trim(payloadUrl);
    if (state === undefined) state = await readState();
    if (state && state.url) return trim(state.url);
    if (SCRIPT_URL && stripHash(SCRIPT_URL).endsWith(SDK_SUFFIX)) {
      return trim(stripHash(SCRIPT_URL).slice(0, -SDK_SUFFIX.length));
    }
    return null;
  }

  function trim(u) {
    return String(u).replace(/\/+$/, "");
  }

  function b64Decode(text) {
    const b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function postJson(url, body) {
    const res = await self.fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    });
    if (!res.ok) throw new Error("Herald answered HTTP " + res.status + " to POST " + url);
    return res;
  }

  /** Reports a receipt event; never rejects (a lost receipt must not break the notification). */
  async function report(herald, event, action) {
    if (!herald || !herald.receipt) return;
    try {
      const base = await heraldBaseUrl(herald.url);
      if (!base) return console.debug("[herald] no Herald URL known; receipt not sent");
      const body = { token: herald.receipt, event };
      if (action) body.action = action;
      await postJson(base + "/v1/receipts", body);
    } catch (e) {
      console.debug("[herald] receipt failed:", e);
    }
  }

  // -- push ------------------------------------------------------------------------------------

  /**
   * Turns a push payload (text) into {title, options, badge}: Herald's own shape, the
   * declarative Web Push shape ({"web_push": 8030, "notification": {...}}), or plain text.
   */
  function parse(text) {
    let msg = null;
    try {
      msg = text ? JSON.parse(text) : null;
    } catch (_) {
      msg = null;
    }
    const fallbackTitle = self.HERALD_DEFAULT_TITLE || "New notification";
    if (!msg || typeof msg !== "object" || Array.isArray(msg)) {
      return { title: fallbackTitle, options: { body: text || "", data: { herald: {} } }, badge: undefined };
    }

    let n = msg; // the fields of the notification
    let herald = msg.herald || {};
    let app = msg.data;
    let url = msg.url;
    if (msg.web_push === 8030 && msg.notification && typeof msg.notification === "object") {
      n = msg.notification;
      // Herald puts {herald: <receipt block>, app: <the send's data>} there.
      const data = n.data && typeof n.data === "object" && !Array.isArray(n.data) ? n.data : {};
      herald = data.herald || {};
      app = data.app;
      url = n.navigate;
    }

    const actionUrls = {};
    const actions = Array.isArray(n.actions)
      ? n.actions
          .filter((a) => a && a.action && a.title)
          .map((a) => {
            const to = a.navigate || a.url;
            if (to) actionUrls[a.action] = to;
            const out = { action: String(a.action), title: String(a.title) };
            if (a.icon) out.icon = a.icon;
            return out;
          })
      : undefined;

    const options = {
      data: { url: url || undefined, herald, app },
    };
    if (Object.keys(actionUrls).length) options.data.action_urls = actionUrls;
    if (n.body != null) options.body = String(n.body);
    for (const k of ["icon", "image", "tag", "lang", "dir", "timestamp", "requireInteraction", "silent"]) {
      if (n[k] != null) options[k] = n[k];
    }
    // A send's `badge` is an icon URL for Web Push, or a number (the APNs badge): the app badge.
    let badge = msg.app_badge;
    if (typeof n.badge === "string") options.badge = n.badge;
    else if (typeof n.badge === "number" && badge == null) badge = n.badge;
    if (n.tag && n.renotify != null) options.renotify = !!n.renotify; // renotify without tag throws
    if (actions && actions.length) options.actions = actions;

    let title = n.title;
    if (typeof title !== "string" || !title) {
      title = fallbackTitle;
      if (options.body == null) options.body = text;
    }
    return { title, options, badge };
  }

  async function onPush(event) {
    let text = "";
    try {
      text = event.data ? event.data.text() : "";
    } catch (_) {
      text = "";
    }
    const { title, options, badge } = parse(text);
    try {
      await self.registration.showNotification(title, options);
    } catch (e) {
      // Bad icon/action options must not cost the user their notification.
      console.debug("[herald] showNotification failed, retrying plainly:", e);
      await self.registration.showNotification(title, { body: options.body, data: options.data });
    }
    if (typeof badge === "number" && self.navigator && typeof self.navigator.setAppBadge === "function") {
      try {
        await self.navigator.setAppBadge(badge);
      } catch (e) {
        console.debug("[herald] setAppBadge failed:", e);
      }
    }
    await report(options.data.herald, "displayed");
  }

  // -- clicks ----------------------------------------------------------------------------------

  /**
   * Receipts of notifications clicked while this worker runs. Browsers close a clicked
   * notification (Firefox fires `notificationclose` for it too); that is not a dismissal.
   */
  const clicked = new Set();

  async function focusOrOpen(url) {
    const target = new URL(url, self.registration.scope || self.location.href).href;
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((c) => c.url === target);
    if (open && typeof open.focus === "function") return open.focus();
    if (self.clients.openWindow) return self.clients.openWindow(target);
  }

  function onClick(event) {
    const n = event.notification;
    n.close();
    const data = n.data || {};
    const action = event.action || "";
    const url = (action && data.action_urls && data.action_urls[action]) || data.url;
    if (data.herald && data.herald.receipt) {
      clicked.add(data.herald.receipt);
      if (clicked.size > 100) clicked.delete(clicked.values().next().value);
    }
    // Navigate first: openWindow is only allowed while the click is fresh. The receipt runs alongside.
    const navigation = url
      ? focusOrOpen(url).catch((e) => console.debug("[herald] could not open", url, e))
      : Promise.resolve();
    return Promise.all([report(data.herald, "clicked", action), navigation]);
  }

  // -- subscription renewal --------------------------------------------------------------------

  async function onSubscriptionChange(event) {
    const state = await readState();
    if (!state || !state.renewalToken) return console.debug("[herald] no stored subscription to renew");
    let sub = event.newSubscription;
    if (!sub) {
      const old = event.oldSubscription;
      const key = state.vapidKey
        ? b64Decode(state.vapidKey)
        : old && old.options && old.options.applicationServerKey;
      sub = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    }
    const json = sub.toJSON();
    const keys = { endpoint: sub.endpoint || json.endpoint, p256dh: json.keys.p256dh, auth: json.keys.auth };
    if (keys.endpoint === state.endpoint && keys.p256dh === state.p256dh && keys.auth === state.auth) {
      return; // already registered (the page's SDK got there first)
    }
    const base = await heraldBaseUrl(null, state);
    if (!base) return console.debug("[herald] no Herald URL known; renewal skipped");
    const res = await postJson(base + "/v1/renewals", {
      token: state.renewalToken,
      settings: { endpoint: keys.endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } },
    });
    const record = await res.json();
    await writeState({
      ...state,
      subscriptionId: record.id,
      channelId: record.channel_id || state.channelId,
      endpoint: keys.endpoint,
      p256dh: keys.p256dh,
      auth: keys.auth,
      renewalToken: record.renewal_token || state.renewalToken,
      topics: record.topics || state.topics,
      syncedAt: Date.now(),
    });
  }

  // -- wiring ----------------------------------------------------------------------------------

  self.addEventListener("push", (event) => event.waitUntil(onPush(event)));
  self.addEventListener("notificationclick", (event) => event.waitUntil(onClick(event)));
  self.addEventListener("notificationclose", (event) => {
    const data = event.notification.data || {};
    if (data.herald && clicked.has(data.herald.receipt)) return; // closed by its click
    event.waitUntil(report(data.herald, "dismissed"));
  });
  self.addEventListener("pushsubscriptionchange", (event) =>
    event.waitUntil(
      // If this fails, the SDK notices the changed endpoint on the next page load and re-registers.
      onSubscriptionChange(event).catch((e) => console.debug("[herald] renewal failed:", e))
    )
  );
  if (STANDALONE) {
    self.addEventListener("install", (event) => event.waitUntil(self.skipWaiting()));
    self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
  }

  self.HeraldSW = { parse, heraldBaseUrl, readState, scriptUrl: SCRIPT_URL, standalone: STANDALONE };
})();
