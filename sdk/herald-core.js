/*
 * Herald browser SDK: Web Push subscriptions, topics and the in-app inbox.
 *
 * This file is served two ways, without a build step, by plain concatenation:
 *   /sdk/herald.js   "(function(){\n" + this file + "\nwindow.Herald = Herald;\n})();\n"
 *   /sdk/herald.mjs  this file + "\nexport default Herald;\nexport { Herald, HeraldError };\n"
 * so it declares top-level `HeraldError` and `Herald` and has no import/export statements.
 * Browser globals (navigator, Notification, fetch, indexedDB…) are only touched when a method
 * runs, behind `typeof` guards, so loading the file never throws.
 */
"use strict";

/** The state the service worker needs, shared with herald-sw.js: db `herald`, store `state`. */
const HERALD_DB = "herald";
const HERALD_STORE = "state";
const HERALD_STATE_KEY = "current";
/** Re-register a subscription that has not been confirmed with Herald for this long. */
const HERALD_RESYNC_AFTER_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * Every failure of the SDK. `code` is stable and machine-readable: `unsupported`,
 * `permission_denied`, `not_in_gesture`, `network`, `not_subscribed`, `invalid_config`,
 * or the `code` of Herald's error body (`unauthenticated`, `validation_failed`, …).
 * `status` is the HTTP status when the error came from a response.
 */
class HeraldError extends Error {
  constructor(code, message, extra) {
    super(message);
    this.name = "HeraldError";
    this.code = code;
    this.status = (extra && extra.status) || undefined;
    if (extra && extra.details !== undefined) this.details = extra.details;
    if (extra && extra.requestId) this.requestId = extra.requestId;
    if (extra && extra.cause) this.cause = extra.cause;
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/** base64url (no padding) of bytes. */
function heraldB64Encode(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Bytes of a base64url (or base64) string. */
function heraldB64Decode(text) {
  const b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function heraldSameBytes(a, b) {
  if (!a || !b) return false;
  const x = a instanceof Uint8Array ? a : new Uint8Array(a);
  const y = b instanceof Uint8Array ? b : new Uint8Array(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** `{endpoint, p256dh, auth}` of a browser PushSubscription. */
function heraldSubscriptionKeys(sub) {
  const json = typeof sub.toJSON === "function" ? sub.toJSON() : sub;
  const keys = (json && json.keys) || {};
  return { endpoint: sub.endpoint || json.endpoint, p256dh: keys.p256dh, auth: keys.auth };
}

function heraldDebug(...args) {
  if (typeof console !== "undefined" && console.debug) console.debug("[herald]", ...args);
}

/** True on iPhone/iPad (iPadOS reports itself as a Mac with a touch screen). */
function heraldIsIOS() {
  if (typeof navigator === "undefined") return false;
  const ua = navigator.userAgent || "";
  return /iPhone|iPad|iPod/.test(ua) || (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
}

function heraldUnsupportedError() {
  if (heraldIsIOS() && (typeof navigator === "undefined" || navigator.standalone !== true)) {
    return new HeraldError(
      "unsupported",
      "Web Push on iPhone and iPad only works once the site is added to the Home Screen " +
        "(Share → Add to Home Screen) and opened from there; ask the user to do that first."
    );
  }
  return new HeraldError(
    "unsupported",
    "This browser does not support Web Push (it needs service workers, PushManager and Notification, " +
      "and the page must be served over HTTPS or from localhost)."
  );
}

// ---------------------------------------------------------------------------------------------
// Stored state (IndexedDB, shared with the service worker). Falls back to memory when
// IndexedDB is unavailable, so the page keeps working (the worker then cannot report receipts).
// ---------------------------------------------------------------------------------------------

let heraldMemoryState = null;

function heraldIdb(mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(HERALD_DB, 1);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains(HERALD_STORE)) db.createObjectStore(HERALD_STORE);
    };
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      let req;
      try {
        const tx = db.transaction(HERALD_STORE, mode);
        req = fn(tx.objectStore(HERALD_STORE));
        tx.oncomplete = () => {
          db.close();
          resolve(req && req.result);
        };
        tx.onerror = tx.onabort = () => {
          db.close();
          reject(tx.error || (req && req.error) || new Error("IndexedDB transaction failed"));
        };
      } catch (e) {
        db.close();
        reject(e);
      }
    };
  });
}

const heraldStore = {
  async get() {
    if (typeof indexedDB === "undefined") return heraldMemoryState;
    try {
      return (await heraldIdb("readonly", (s) => s.get(HERALD_STATE_KEY))) || null;
    } catch (e) {
      heraldDebug("IndexedDB unavailable, using memory:", e);
      return heraldMemoryState;
    }
  },
  async put(state) {
    heraldMemoryState = state;
    if (typeof indexedDB === "undefined") return;
    try {
      await heraldIdb("readwrite", (s) => s.put(state, HERALD_STATE_KEY));
    } catch (e) {
      heraldDebug("IndexedDB unavailable, the service worker will not see this state:", e);
    }
  },
  async clear() {
    heraldMemoryState = null;
    if (typeof indexedDB === "undefined") return;
    try {
      await heraldIdb("readwrite", (s) => s.delete(HERALD_STATE_KEY));
    } catch (e) {
      heraldDebug("IndexedDB unavailable:", e);
    }
  },
};

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

class HeraldClient {
  constructor(options) {
    if (!options || typeof options.url !== "string" || !options.url) {
      throw new HeraldError("invalid_config", "Herald.init needs `url`, Herald's base URL (e.g. https://push.example.com).");
    }
    if (!options.sessionId && !options.publicKey) {
      throw new HeraldError("invalid_config", "Herald.init needs `publicKey` (pk_…), or a `sessionId` (ses_…).");
    }
    this.url = options.url.replace(/\/+$/, "");
    this.publicKey = options.publicKey;
    this.channelId = options.channelId;
    this.userToken = options.userToken;
    this.sessionId = options.sessionId;
    this.userId = options.userId;
    this.serviceWorker = options.serviceWorker || "/herald-sw.js";
    this._cachedToken = null; // a userToken function's last answer (a promise)

    /** Topics of the current subscription. */
    this.topics = {
      add: (name) => this._topic("PUT", name),
      remove: (name) => this._topic("DELETE", name),
    };
    /** The user's notifications (newest first), and read marks. */
    this.inbox = {
      list: ({ cursor, limit } = {}) => {
        const q = [];
        if (cursor != null) q.push("cursor=" + encodeURIComponent(cursor));
        if (limit != null) q.push("limit=" + encodeURIComponent(limit));
        return this._request("GET", "/v1/me/notifications" + (q.length ? "?" + q.join("&") : ""));
      },
      markRead: (id) => this._request("POST", "/v1/me/notifications/" + encodeURIComponent(id) + "/read"),
    };

    /**
     * Re-sync without a prompt: resolves `true` when the subscription was registered again,
     * `false` otherwise. Never rejects; failures are logged with console.debug.
     */
    this.ready = Promise.resolve()
      .then(() => this._resync())
      .catch((e) => {
        heraldDebug("re-sync failed:", e);
        return false;
      });
  }

  /** "default" | "granted" | "denied", or "unsupported". */
  permission() {
    return Herald.isSupported() ? Notification.permission : "unsupported";
  }

  /**
   * Asks for permission (call it from a click handler), subscribes the browser with the
   * channel's VAPID key and registers the subscription with Herald. Resolves with Herald's
   * subscription record.
   */
  async subscribe({ topics } = {}) {
    if (!Herald.isSupported()) throw heraldUnsupportedError();
    // The gesture only matters for the prompt: with permission already granted, no prompt shows.
    const gestureless = navigator.userActivation && !navigator.userActivation.isActive;
    if (gestureless && Notification.permission !== "granted") {
      throw new HeraldError(
        "not_in_gesture",
        "herald.subscribe() must be called from a user gesture (e.g. directly in a click handler), " +
          "because browsers only show the permission prompt in response to one."
      );
    }
    // No await before this: Safari drops the gesture across an await.
    const permission = await heraldRequestPermission();
    if (permission !== "granted") {
      throw new HeraldError(
        "permission_denied",
        permission === "denied"
          ? "The user blocked notifications for this site; only they can allow them again in the browser's site settings."
          : "The user dismissed the notification prompt; you may ask again later from a user gesture."
      );
    }

    await navigator.serviceWorker.register(this.serviceWorker, { scope: "/" });
    const registration = await navigator.serviceWorker.ready;

    const vapid = await this._request(
      "GET",
      "/v1/me/vapid" + (this.channelId ? "?channel_id=" + encodeURIComponent(this.channelId) : "")
    );
    const applicationServerKey = heraldB64Decode(vapid.vapid_public_key);

    let sub = await registration.pushManager.getSubscription();
    if (sub && !heraldSameBytes(sub.options && sub.options.applicationServerKey, applicationServerKey)) {
      // Subscribed with another key (another channel or a rotated key): browsers refuse a
      // second key on the same registration, so drop the old subscription first.
      await sub.unsubscribe();
      sub = null;
    }
    if (!sub) sub = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });

    const keys = heraldSubscriptionKeys(sub);
    const record = await this._upsert(vapid.channel_id, keys, topics);
    await this._save(record, keys, vapid.vapid_public_key);
    return heraldPublicRecord(record);
  }

  /** Deletes the subscription at Herald (404 is fine) and in the browser; clears stored state. */
  async unsubscribe() {
    const state = await heraldStore.get();
    if (state && state.subscriptionId != null) {
      try {
        await this._request("DELETE", "/v1/me/subscriptions/" + encodeURIComponent(state.subscriptionId));
      } catch (e) {
        // Not found means already gone. Anything else: keep everything so a retry can finish.
        if (!(e instanceof HeraldError && e.status === 404)) throw e;
      }
    }
    if (Herald.isSupported()) {
      const registration = await navigator.serviceWorker.getRegistration();
      const sub = registration && (await registration.pushManager.getSubscription());
      if (sub) await sub.unsubscribe();
    }
    await heraldStore.clear();
  }

  // -- internals ----------------------------------------------------------------------------

  async _topic(method, name) {
    const state = await heraldStore.get();
    if (!state || state.subscriptionId == null) {
      throw new HeraldError("not_subscribed", "This browser is not subscribed yet; call herald.subscribe() first.");
    }
    const path =
      "/v1/me/subscriptions/" + encodeURIComponent(state.subscriptionId) + "/topics/" + encodeURIComponent(name);
    const record = await this._request(method, path);
    if (record && Array.isArray(record.topics)) await heraldStore.put({ ...state, topics: record.topics });
    return heraldPublicRecord(record);
  }

  _upsert(channelId, keys, topics) {
    const body = { channel_id: channelId, settings: { endpoint: keys.endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } } };
    if (topics) body.topics = topics;
    return this._request("POST", "/v1/me/subscriptions", body);
  }

  _save(record, keys, vapidKey) {
    return heraldStore.put({
      url: this.url,
      subscriptionId: record.id,
      endpoint: keys.endpoint,
      p256dh: keys.p256dh,
      auth: keys.auth,
      vapidKey,
      channelId: record.channel_id,
      renewalToken: record.renewal_token,
      topics: record.topics,
      syncedAt: Date.now(),
    });
  }

  /** See `ready`. */
  async _resync() {
    if (!Herald.isSupported() || Notification.permission !== "granted") return false;
    const state = await heraldStore.get();
    if (!state || !state.vapidKey) return false; // never subscribed here, or unsubscribed
    const registration = await navigator.serviceWorker.getRegistration();
    if (!registration) return false;
    let sub = await registration.pushManager.getSubscription();
    if (!sub) {
      // The browser dropped the subscription; permission is granted, so no prompt is shown.
      sub = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: heraldB64Decode(state.vapidKey),
      });
    }
    const keys = heraldSubscriptionKeys(sub);
    const changed = keys.endpoint !== state.endpoint || keys.p256dh !== state.p256dh || keys.auth !== state.auth;
    const stale = !(Date.now() - state.syncedAt < HERALD_RESYNC_AFTER_MS);
    if (!changed && !stale) return false;
    // A new endpoint is a new subscription at Herald: carry the topics over.
    const record = await this._upsert(state.channelId, keys, changed ? state.topics : undefined);
    await this._save(record, keys, state.vapidKey);
    return true;
  }

  /** A fresh user JWT: the string, or the function's (cached) answer. */
  _token(refresh) {
    if (typeof this.userToken !== "function") return Promise.resolve(this.userToken);
    if (refresh || !this._cachedToken) {
      const p = Promise.resolve().then(() => this.userToken());
      this._cachedToken = p;
      p.catch(() => {
        if (this._cachedToken === p) this._cachedToken = null; // ask again next time
      });
    }
    return this._cachedToken;
  }

  async _headers(refresh) {
    const h = { Accept: "application/json" };
    if (this.sessionId) {
      h.Authorization = "Bearer " + this.sessionId;
      return h;
    }
    h.Authorization = "Bearer " + this.publicKey;
    if (this.userToken) {
      let token;
      try {
        token = await this._token(refresh);
      } catch (e) {
        throw new HeraldError("network", "The userToken function failed: " + (e && e.message), { cause: e });
      }
      if (token) h["x-herald-user-token"] = token;
    } else if (this.userId != null) {
      h["x-herald-user-id"] = String(this.userId);
    }
    return h;
  }

  /** One API call; resolves with the JSON answer (null for 204). */
  async _request(method, path, body) {
    let res = await this._fetch(method, path, body, false);
    if (res.status === 401 && typeof this.userToken === "function" && !this.sessionId) {
      res = await this._fetch(method, path, body, true); // the cached JWT may have expired
    }
    if (res.status === 204) return null;
    let payload = null;
    try {
      const text = await res.text();
      payload = text ? JSON.parse(text) : null;
    } catch (_) {
      payload = null;
    }
    if (res.ok) return payload;
    const err = (payload && payload.error) || {};
    throw new HeraldError(
      err.code || "http_" + res.status,
      (err.message || "Herald answered HTTP " + res.status) + " (" + method + " " + path + ")",
      { status: res.status, details: err.details, requestId: err.request_id }
    );
  }

  async _fetch(method, path, body, refresh) {
    const headers = await this._headers(refresh);
    const init = { method, headers, credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      return await fetch(this.url + path, init);
    } catch (e) {
      throw new HeraldError(
        "network",
        "Could not reach Herald at " + this.url + " (" + ((e && e.message) || e) + "). " +
          "Check the url, that the server is up, and that it allows this origin (CORS).",
        { cause: e }
      );
    }
  }
}

function heraldPublicRecord(record) {
  if (!record || typeof record !== "object") return record;
  const { renewal_token, ...rest } = record; // eslint-disable-line no-unused-vars
  return rest;
}

function heraldRequestPermission() {
  // Old Safari only knows the callback form; new browsers return a promise.
  return new Promise((resolve, reject) => {
    try {
      const p = Notification.requestPermission(resolve);
      if (p && typeof p.then === "function") p.then(resolve, reject);
    } catch (e) {
      reject(e);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The public object
// ---------------------------------------------------------------------------------------------

const Herald = {
  /** Creates a client; see sdk/README.md for the options. */
  init(options) {
    return new HeraldClient(options);
  },
  /** Whether this browser can receive Web Push here (service worker, PushManager, Notification). */
  isSupported() {
    return (
      typeof navigator !== "undefined" &&
      !!navigator.serviceWorker &&
      typeof PushManager !== "undefined" &&
      typeof Notification !== "undefined"
    );
  },
  HeraldError,
  version: "1.0.0",
};
