// In-memory stand-ins for the browser APIs the SDK and the worker use, and a small fake Herald.

const tick = () => new Promise((r) => setTimeout(r, 0));
export const later = (fn) => setTimeout(fn, 0);

// -- IndexedDB (the subset used: open/upgrade, one object store, get/put/delete) ---------------

export function fakeIndexedDB() {
  const dbs = new Map(); // name -> {version, stores: Map<store, Map<key, value>>}
  const request = () => ({ result: undefined, error: null, onsuccess: null, onerror: null });

  function makeDb(data) {
    let closed = false;
    return {
      objectStoreNames: { contains: (n) => data.stores.has(n) },
      createObjectStore(n) {
        data.stores.set(n, new Map());
      },
      close() {
        closed = true;
      },
      transaction(storeName, mode = "readonly") {
        if (closed) throw new Error("InvalidStateError: database closed");
        if (!data.stores.has(storeName)) throw new Error("NotFoundError: no store " + storeName);
        const map = data.stores.get(storeName);
        const tx = { oncomplete: null, onerror: null, onabort: null, error: null };
        let pending = 0;
        const op = (fn, write) => {
          if (write && mode !== "readwrite") throw new Error("ReadOnlyError");
          const r = request();
          pending++;
          later(() => {
            r.result = fn();
            if (r.onsuccess) r.onsuccess({ target: r });
            if (--pending === 0) later(() => tx.oncomplete && tx.oncomplete());
          });
          return r;
        };
        tx.objectStore = () => ({
          get: (k) => op(() => structuredClone(map.get(k))),
          put: (v, k) => op(() => (map.set(k, structuredClone(v)), k), true),
          delete: (k) => op(() => void map.delete(k), true),
        });
        return tx;
      },
    };
  }

  const indexedDB = {
    open(name, version = 1) {
      const req = request();
      later(() => {
        let data = dbs.get(name);
        if (!data) dbs.set(name, (data = { version: 0, stores: new Map() }));
        req.result = makeDb(data);
        if (version > data.version) {
          data.version = version;
          if (req.onupgradeneeded) req.onupgradeneeded({ target: req });
        }
        if (req.onsuccess) req.onsuccess({ target: req });
      });
      return req;
    },
  };

  return {
    indexedDB,
    /** The record stored under db/store/key, or undefined. */
    peek: (db = "herald", store = "state", key = "current") => dbs.get(db)?.stores.get(store)?.get(key),
    /** Writes a record directly (as if a previous page had). */
    seed(value, db = "herald", store = "state", key = "current") {
      if (!dbs.has(db)) dbs.set(db, { version: 1, stores: new Map() });
      const d = dbs.get(db);
      if (!d.stores.has(store)) d.stores.set(store, new Map());
      d.stores.get(store).set(key, structuredClone(value));
    },
  };
}

// -- Push ----------------------------------------------------------------------------------------

let subscriptionCounter = 0; // global, so every fake endpoint is unique

export function fakePushManager(registration) {
  const pm = {
    current: null,
    subscribeCalls: [],
    async getSubscription() {
      if (pm.current && pm.current.unsubscribed) pm.current = null;
      return pm.current;
    },
    async subscribe(options) {
      pm.subscribeCalls.push(options);
      // Like browsers: subscribing needs an active worker on the registration.
      if (registration && !registration.active) throw new Error("AbortError: no active service worker");
      if (pm.current && pm.current.unsubscribed) pm.current = null;
      const key = new Uint8Array(options.applicationServerKey);
      // Like browsers: a second key on the same registration is refused.
      if (pm.current && !sameBytes(pm.current.options.applicationServerKey, key)) {
        throw new Error("InvalidStateError: a subscription with a different applicationServerKey exists");
      }
      if (!pm.current) pm.current = fakeSubscription(pm, ++subscriptionCounter, key);
      return pm.current;
    },
  };
  return pm;
}

export function fakeSubscription(pm, n, key) {
  const sub = {
    endpoint: `https://push.example.net/ep/${n}`,
    options: { userVisibleOnly: true, applicationServerKey: key ? new Uint8Array(key).buffer : null },
    unsubscribed: false,
    toJSON() {
      return { endpoint: sub.endpoint, expirationTime: null, keys: { p256dh: `p256dh-${n}`, auth: `auth-${n}` } };
    },
    async unsubscribe() {
      sub.unsubscribed = true;
      if (pm && pm.current === sub) pm.current = null;
      return true;
    },
  };
  return sub;
}

function sameBytes(a, b) {
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

// -- A page --------------------------------------------------------------------------------------

export const DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36";
export const IPHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1";

/** A service worker (ServiceWorker) that goes installing → installed → activating → activated. */
function fakeServiceWorker(scriptURL) {
  const listeners = new Set();
  const sw = {
    scriptURL,
    state: "installing",
    addEventListener: (type, fn) => type === "statechange" && listeners.add(fn),
    removeEventListener: (type, fn) => listeners.delete(fn),
    setState(state) {
      sw.state = state;
      for (const fn of [...listeners]) fn({ target: sw });
    },
  };
  return sw;
}

const PAGE_ORIGIN = "https://app.example.com";

/**
 * navigator, Notification, PushManager for a page on https://app.example.com/ (outside every
 * scope but `/`); `prompt` is what the permission prompt answers. Service workers install
 * asynchronously (`installing` first, `active` a few ticks later), as in browsers;
 * `registerError` makes register() reject.
 */
export function fakePage({ permission = "default", prompt = "granted", active = true, ua = DESKTOP_UA, idb, fetch, registerError } = {}) {
  const registrations = new Map(); // absolute scope -> registration
  /** The registration of `scope` (created on first use, not yet registered). */
  const registrationFor = (scope = "/") => {
    const abs = new URL(scope, PAGE_ORIGIN + "/").href;
    if (!registrations.has(abs)) {
      const reg = { scope: abs, active: null, installing: null, waiting: null, registered: false };
      reg.pushManager = fakePushManager(reg);
      registrations.set(abs, reg);
    }
    return registrations.get(abs);
  };
  const root = registrationFor("/");
  const page = {
    pushManager: root.pushManager,
    registration: root,
    registrationFor,
    registerCalls: [],
    prompts: 0,
    navigator: {
      userAgent: ua,
      userActivation: { isActive: active },
      serviceWorker: {
        async register(url, options = {}) {
          page.registerCalls.push([url, options]);
          if (registerError) throw registerError;
          const reg = registrationFor(options.scope || "/");
          reg.registered = true;
          if (!reg.active && !reg.installing) {
            const sw = (reg.installing = fakeServiceWorker(new URL(url, PAGE_ORIGIN + "/").href));
            later(() => {
              sw.setState("installed");
              later(() => {
                reg.installing = null;
                reg.active = sw;
                sw.setState("activating");
                later(() => sw.setState("activated"));
              });
            });
          }
          return reg;
        },
        // Resolves with the registration controlling the page: only the root scope does here.
        get ready() {
          return new Promise((resolve) => {
            const poll = () => (root.registered && root.active ? resolve(root) : later(poll));
            poll();
          });
        },
        async getRegistration(clientURL = PAGE_ORIGIN + "/") {
          const url = new URL(clientURL, PAGE_ORIGIN + "/").href;
          const match = [...registrations.values()]
            .filter((r) => r.registered && url.startsWith(r.scope))
            .sort((a, b) => b.scope.length - a.scope.length)[0];
          return match || undefined;
        },
      },
    },
    Notification: {
      permission,
      requestPermission() {
        page.prompts++;
        page.Notification.permission = prompt;
        return Promise.resolve(prompt);
      },
    },
    PushManager: function PushManager() {},
    /** Pretends the worker is already registered and active (a returning visitor). */
    markRegistered(scope = "/") {
      const reg = registrationFor(scope);
      reg.registered = true;
      reg.active = fakeServiceWorker(PAGE_ORIGIN + "/herald-sw.js");
      reg.active.state = "activated";
    },
    env() {
      return {
        navigator: page.navigator,
        Notification: page.Notification,
        PushManager: page.PushManager,
        indexedDB: idb && idb.indexedDB,
        fetch,
      };
    },
  };
  return page;
}

// -- Herald --------------------------------------------------------------------------------------

/** A P-256 public key shape: 65 bytes, 0x04 first. */
export function vapidKey(seed = 1) {
  const bytes = new Uint8Array(65).map((_, i) => (i * 31 + seed * 7) & 0xff);
  bytes[0] = 4;
  return Buffer.from(bytes).toString("base64url");
}

const json = (status, body) =>
  new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: body === undefined ? {} : { "content-type": "application/json" },
  });

/**
 * A fake Herald behind a fetch stub. Records every call as {method, url, path, headers, body}.
 * `herald.override(fn)` answers first when fn returns a Response (or throws, to simulate a
 * network failure).
 */
export function fakeHerald({ base = "https://push.example.com", vapid = vapidKey(), channelId = "ch_web" } = {}) {
  const subs = new Map();
  const nextId = () => Math.max(0, ...subs.keys()) + 1;
  const herald = {
    calls: [],
    subs,
    vapid,
    /** Pairing codes: code -> {user, channel_id, used}. */
    codes: new Map(),
    overrides: [],
    override(fn) {
      herald.overrides.push(fn);
    },
    callsTo(method, pathPrefix) {
      return herald.calls.filter((c) => c.method === method && c.path.startsWith(pathPrefix));
    },
    async fetch(url, init = {}) {
      const u = new URL(url);
      const method = (init.method || "GET").toUpperCase();
      const headers = Object.fromEntries(Object.entries(init.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
      const call = { method, url, path: u.pathname + u.search, headers, body: init.body ? JSON.parse(init.body) : undefined };
      herald.calls.push(call);
      await tick();
      for (const fn of herald.overrides) {
        const res = fn(call);
        if (res) return res;
      }
      if (!url.startsWith(base + "/")) throw new TypeError("Failed to fetch");
      return route(call, u);
    },
  };

  /** As Herald answers: settings without the auth secret. */
  function record(s) {
    const settings = s.settings ? { endpoint: s.settings.endpoint, p256dh: s.settings.keys?.p256dh } : undefined;
    return { ...s, settings, topics: [...s.topics] };
  }

  /** Registration as Herald does it: an upsert on (channel, endpoint, user). */
  function register(user, channel, settings, topics) {
    const existing = [...subs.values()].find((s) => s.identifier === settings.endpoint && s.user === user && s.channel_id === channel);
    const now = new Date().toISOString();
    const s = existing || {
      id: nextId(), user, channel_id: channel, channel_type: "web_push", identifier: settings.endpoint,
      kind: "standard", environment: "production", status: "active", inactive_reason: null, muted: false,
      topics: [], created_at: now,
    };
    Object.assign(s, { settings, status: "active", inactive_reason: null, updated_at: now, last_seen_at: now, renewal_token: `rnw_${s.id}_${Date.now()}` });
    if (topics) s.topics = [...topics];
    subs.set(s.id, s);
    return [existing ? 200 : 201, s];
  }

  const error = (status, code, message) => json(status, { error: { code, message, status } });

  function route(call, u) {
    const p = u.pathname;
    let m;
    if (call.method === "GET" && p === "/v1/me/vapid") {
      return json(200, { channel_id: u.searchParams.get("channel_id") || channelId, vapid_public_key: vapid });
    }
    if (call.method === "POST" && p === "/v1/me/subscriptions") {
      const b = call.body;
      const [status, s] = register("u_1", b.channel_id, b.settings, b.topics);
      return json(status, record(s));
    }
    if ((m = /^\/v1\/pair\/([^/]+)$/.exec(p)) && call.method === "POST") {
      const code = herald.codes.get(decodeURIComponent(m[1]));
      if (!code) return notFound("pairing code", m[1]);
      if (code.used) return error(410, "gone", "this code was already used");
      code.used = true;
      const [status, s] = register(code.user, code.channel_id || channelId, call.body.settings, call.body.topics);
      return json(status, record(s));
    }
    if (call.method === "POST" && p === "/v1/renewals") {
      const old = [...subs.values()].find((s) => s.renewal_token === call.body.token);
      if (!old) return error(401, "unauthenticated", "renewal token is not valid");
      if (old.inactive_reason === "replaced") return error(410, "gone", "this subscription was already renewed");
      const [status, s] = register(old.user, old.channel_id, call.body.settings, old.topics);
      if (s !== old) Object.assign(old, { status: "inactive", inactive_reason: "replaced" });
      return json(status, record(s));
    }
    if ((m = /^\/v1\/me\/subscriptions\/(\d+)$/.exec(p)) && call.method === "DELETE") {
      if (!subs.delete(Number(m[1]))) return notFound("subscription", m[1]);
      return json(204);
    }
    if ((m = /^\/v1\/me\/subscriptions\/(\d+)\/topics\/([^/]+)$/.exec(p))) {
      const s = subs.get(Number(m[1]));
      if (!s) return notFound("subscription", m[1]);
      const name = decodeURIComponent(m[2]);
      s.topics = s.topics.filter((t) => t !== name);
      if (call.method === "PUT") s.topics.push(name);
      return json(200, record(s));
    }
    if (call.method === "GET" && p === "/v1/me/notifications") {
      return json(200, { data: [{ id: "ntf_1", title: "Hi", read_at: null }], next_cursor: null });
    }
    if ((m = /^\/v1\/me\/notifications\/([^/]+)\/read$/.exec(p)) && call.method === "POST") {
      return json(200, { id: decodeURIComponent(m[1]), read_at: new Date().toISOString() });
    }
    if (call.method === "POST" && p === "/v1/receipts") return json(204);
    return notFound("route", p);
  }

  function notFound(resource, id) {
    return json(404, { error: { code: "not_found", message: `${resource} not found`, status: 404, details: { resource, id } } });
  }

  herald.json = json;
  return herald;
}

// -- A service worker global ---------------------------------------------------------------------

/** A fake `self` for herald-sw.js; `dispatch(type, event)` runs the listeners and awaits waitUntil. */
export function fakeWorker({ location = "https://app.example.com/herald-sw.js", scope = "https://app.example.com/", idb, fetch, extra = {} } = {}) {
  const listeners = {};
  const w = {
    shown: [],
    opened: [],
    focused: [],
    badges: [],
    windows: [],
    skipWaitingCalls: 0,
    claimCalls: 0,
    failShowWithOptions: false,
  };
  const self = {
    location: new URL(location),
    indexedDB: idb && idb.indexedDB,
    fetch,
    navigator: { setAppBadge: async (n) => void w.badges.push(n) },
    addEventListener(type, fn) {
      (listeners[type] ||= []).push(fn);
    },
    registration: {
      scope,
      active: { state: "activated" },
      pushManager: fakePushManager(),
      async showNotification(title, options) {
        if (w.failShowWithOptions && options.actions) throw new TypeError("bad actions");
        w.shown.push({ title, options });
      },
    },
    clients: {
      async matchAll(opts) {
        w.matchAllOptions = opts;
        return w.windows;
      },
      async openWindow(url) {
        w.opened.push(url);
        return { url };
      },
      async claim() {
        w.claimCalls++;
      },
    },
    async skipWaiting() {
      w.skipWaitingCalls++;
    },
    ...extra,
  };
  w.self = self;
  w.listeners = listeners;
  w.windowClient = (url) => {
    const c = { url, focus: async () => (w.focused.push(url), c) };
    w.windows.push(c);
    return c;
  };
  w.dispatch = async (type, props = {}) => {
    const pending = [];
    const event = { ...props, waitUntil: (p) => pending.push(Promise.resolve(p)) };
    for (const fn of listeners[type] || []) fn(event);
    await Promise.all(pending);
    return event;
  };
  w.pushData = (payload) => ({ text: () => (typeof payload === "string" ? payload : JSON.stringify(payload)) });
  w.notification = (data) => {
    const n = { data, closed: false, close: () => (n.closed = true) };
    return n;
  };
  return w;
}
