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

/**
 * The state the service worker needs, shared with herald-sw.js: db `herald`, store `state`,
 * one record per service-worker scope: key `current` for the scope `/`, else
 * `current:<scope path>` (herald-sw.js derives the same key from its registration's scope).
 */
const HERALD_DB = "herald";
const HERALD_STORE = "state";
const HERALD_STATE_KEY = "current";
/** Re-register a subscription that has not been confirmed with Herald for this long. */
const HERALD_RESYNC_AFTER_MS = 7 * 24 * 60 * 60 * 1000;

/** The IndexedDB key of the state for a service-worker scope (a path or URL). */
function heraldStateKey(scope) {
  const base = (typeof location !== "undefined" && location && location.href) || "http://localhost/";
  let path;
  try {
    path = new URL(scope || "/", base).pathname;
  } catch (_) {
    path = String(scope || "/");
  }
  return path === "/" ? HERALD_STATE_KEY : HERALD_STATE_KEY + ":" + path;
}

/**
 * Every failure of the SDK. `code` is stable and machine-readable: `unsupported`,
 * `permission_denied`, `not_in_gesture`, `service_worker`, `network`, `not_subscribed`, `invalid_config`,
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

const heraldMemoryState = new Map();

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

/** The stored state of one scope (`key` from heraldStateKey). */
function heraldStore(key) {
  return {
    async get() {
      if (typeof indexedDB === "undefined") return heraldMemoryState.get(key) || null;
      try {
        return (await heraldIdb("readonly", (s) => s.get(key))) || null;
      } catch (e) {
        heraldDebug("IndexedDB unavailable, using memory:", e);
        return heraldMemoryState.get(key) || null;
      }
    },
    async put(state) {
      heraldMemoryState.set(key, state);
      if (typeof indexedDB === "undefined") return;
      try {
        await heraldIdb("readwrite", (s) => s.put(state, key));
      } catch (e) {
        heraldDebug("IndexedDB unavailable, the service worker will not see this state:", e);
      }
    },
    async clear() {
      heraldMemoryState.delete(key);
      if (typeof indexedDB === "undefined") return;
      try {
        await heraldIdb("readwrite", (s) => s.delete(key));
      } catch (e) {
        heraldDebug("IndexedDB unavailable:", e);
      }
    },
  };
}

/**
 * The registration's active worker, once there is one: pushManager.subscribe needs it. (Not
 * `navigator.serviceWorker.ready`, which never resolves when the page is outside the scope.)
 */
function heraldActivated(registration) {
  if (registration.active) return Promise.resolve(registration);
  const worker = registration.installing || registration.waiting;
  if (!worker) return navigator.serviceWorker.ready;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (worker.state === "activated" || registration.active) {
        worker.removeEventListener("statechange", check);
        resolve(registration);
      } else if (worker.state === "redundant") {
        worker.removeEventListener("statechange", check);
        reject(new HeraldError("service_worker", "The service worker failed to install; check its script and the browser console."));
      }
    };
    worker.addEventListener("statechange", check);
    check();
  });
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

class HeraldClient {
  constructor(options) {
    if (!options || typeof options.url !== "string" || !options.url) {
      throw new HeraldError("invalid_config", "Herald.init needs `url`, Herald's base URL (e.g. https://push.example.com).");
    }
    if (options.pairingCode != null) {
      if (typeof options.vapidKey !== "string" || !options.vapidKey) {
        throw new HeraldError(
          "invalid_config",
          "Herald.init with `pairingCode` needs `vapidKey`, the Web Push channel's VAPID public key " +
            "(the code names the channel, but Herald hands out its key only to client credentials)."
        );
      }
    } else if (!options.sessionId && !options.publicKey) {
      throw new HeraldError("invalid_config", "Herald.init needs `publicKey` (pk_…), a `sessionId` (ses_…) or a `pairingCode`.");
    }
    this.url = options.url.replace(/\/+$/, "");
    this.publicKey = options.publicKey;
    this.channelId = options.channelId;
    this.userToken = options.userToken;
    this.sessionId = options.sessionId;
    this.userId = options.userId;
    this.pairingCode = options.pairingCode != null ? String(options.pairingCode) : undefined;
    this.vapidKey = options.vapidKey;
    this.serviceWorker = options.serviceWorker || "/herald-sw.js";
    this.scope = options.scope || "/";
    this._store = heraldStore(heraldStateKey(this.scope));
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
   * channel's VAPID key and registers the subscription with Herald (or, with `pairingCode`,
   * redeems the code with it). Resolves with Herald's subscription record.
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

    const registration = await this._register();

    // Pairing: the page was given the key; otherwise Herald names the channel and its key.
    const vapid = this.pairingCode != null
      ? { channel_id: this.channelId, vapid_public_key: this.vapidKey }
      : await this._request(
          "GET",
          "/v1/me/vapid" + (this.channelId ? "?channel_id=" + encodeURIComponent(this.channelId) : "")
        );
    let applicationServerKey;
    try {
      applicationServerKey = heraldB64Decode(vapid.vapid_public_key);
    } catch (e) {
      throw new HeraldError("invalid_config", "The VAPID key is not base64url: " + vapid.vapid_public_key, { cause: e });
    }

    let sub = await registration.pushManager.getSubscription();
    if (sub && !heraldSameBytes(sub.options && sub.options.applicationServerKey, applicationServerKey)) {
      // Subscribed with another key (another channel or a rotated key): browsers refuse a
      // second key on the same registration, so drop the old subscription first.
      await sub.unsubscribe();
      sub = null;
    }
    if (!sub) sub = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });

    const keys = heraldSubscriptionKeys(sub);
    const record = this.pairingCode != null
      ? await this._pair(keys, topics)
      : await this._upsert(vapid.channel_id, keys, topics);
    await this._save(record, keys, vapid.vapid_public_key);
    return heraldPublicRecord(record);
  }

  /**
   * Deletes the subscription at Herald (404 is fine) and in the browser; clears stored state.
   * In pairing mode there is no credential to delete it at Herald with: only the browser's
   * subscription goes (Herald deactivates it on its next send, when the push service answers 410).
   */
  async unsubscribe() {
    const state = await this._store.get();
    if (this.pairingCode == null && state && state.subscriptionId != null) {
      try {
        await this._request("DELETE", "/v1/me/subscriptions/" + encodeURIComponent(state.subscriptionId));
      } catch (e) {
        // Not found means already gone. Anything else: keep everything so a retry can finish.
        if (!(e instanceof HeraldError && e.status === 404)) throw e;
      }
    }
    if (Herald.isSupported()) {
      const registration = await navigator.serviceWorker.getRegistration(this.scope);
      const sub = registration && (await registration.pushManager.getSubscription());
      if (sub) await sub.unsubscribe();
    }
    await this._store.clear();
  }

  // -- internals ----------------------------------------------------------------------------

  /** Registers the worker at `scope` and resolves once it is active. */
  async _register() {
    let registration;
    try {
      registration = await navigator.serviceWorker.register(this.serviceWorker, { scope: this.scope });
    } catch (e) {
      throw new HeraldError(
        "service_worker",
        "Could not register the service worker " + this.serviceWorker + " at scope " + this.scope + " (" +
          ((e && e.message) || e) + "). It must be a JavaScript file on this page's origin, in the scope's folder or above.",
        { cause: e }
      );
    }
    return heraldActivated(registration);
  }

  async _topic(method, name) {
    const state = await this._store.get();
    if (!state || state.subscriptionId == null) {
      throw new HeraldError("not_subscribed", "This browser is not subscribed yet; call herald.subscribe() first.");
    }
    const path =
      "/v1/me/subscriptions/" + encodeURIComponent(state.subscriptionId) + "/topics/" + encodeURIComponent(name);
    const record = await this._request(method, path);
    if (record && Array.isArray(record.topics)) await this._store.put({ ...state, topics: record.topics });
    return heraldPublicRecord(record);
  }

  _upsert(channelId, keys, topics) {
    const body = { channel_id: channelId, settings: heraldSettings(keys) };
    if (topics) body.topics = topics;
    return this._request("POST", "/v1/me/subscriptions", body);
  }

  /** Redeems the pairing code with this browser's subscription (the code is the credential). */
  _pair(keys, topics) {
    const body = { settings: heraldSettings(keys) };
    if (topics) body.topics = topics;
    return this._request("POST", "/v1/pair/" + encodeURIComponent(this.pairingCode), body, { anonymous: true });
  }

  /** Tells Herald the browser's new subscription replaces the stored one (renewal token). */
  _renew(state, keys) {
    return this._request("POST", "/v1/renewals", { token: state.renewalToken, settings: heraldSettings(keys) }, { anonymous: true });
  }

  _save(record, keys, vapidKey) {
    return this._store.put({
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
    const state = await this._store.get();
    if (!state || !state.vapidKey) return false; // never subscribed here, or unsubscribed
    const registration = await navigator.serviceWorker.getRegistration(this.scope);
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
    const paired = this.pairingCode != null;
    if (!changed && (!stale || paired)) return false; // pairing mode has no credential to refresh with
    let record = null;
    if (changed && state.renewalToken) {
      // A new endpoint replaces the old subscription: same user, channel and topics at Herald.
      try {
        record = await this._renew(state, keys);
      } catch (e) {
        if (paired) throw e;
        heraldDebug("renewal refused, registering again:", e); // e.g. the worker renewed already
      }
    }
    if (!record) {
      if (paired) return false;
      // Registering again; a new endpoint is a new subscription at Herald: carry the topics over.
      record = await this._upsert(state.channelId, keys, changed ? state.topics : undefined);
    }
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

  /**
   * One API call; resolves with the JSON answer (null for 204). `anonymous`: no credential
   * (pairing, renewals: the token in the body is the credential).
   */
  async _request(method, path, body, { anonymous = false } = {}) {
    if (!anonymous && this.pairingCode != null && !this.publicKey && !this.sessionId) {
      throw new HeraldError(
        "invalid_config",
        "This client was made with a pairingCode only: " + method + " " + path.split("?")[0] +
          " needs client credentials (publicKey with userToken, or sessionId)."
      );
    }
    let res = await this._fetch(method, path, body, false, anonymous);
    if (!anonymous && res.status === 401 && typeof this.userToken === "function" && !this.sessionId) {
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

  async _fetch(method, path, body, refresh, anonymous) {
    const headers = anonymous ? { Accept: "application/json" } : await this._headers(refresh);
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

/** A registration's `settings`: the browser's PushSubscription.toJSON() shape. */
function heraldSettings(keys) {
  return { endpoint: keys.endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } };
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
