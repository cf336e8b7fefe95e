import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadClassic } from "./load.mjs";
import { fakeHerald, fakeIndexedDB, fakePage, vapidKey, IPHONE_UA, DESKTOP_UA } from "./fakes.mjs";

const URL_ = "https://push.example.com";
const PK = "pk_test_123";

/** A fresh page: fake Herald, fake IndexedDB, fake browser, and the SDK loaded into it. */
function setup(pageOpts = {}, heraldOpts = {}) {
  const herald = fakeHerald(heraldOpts);
  const idb = pageOpts.idb || fakeIndexedDB();
  const page = fakePage({ ...pageOpts, idb, fetch: herald.fetch });
  const debug = [];
  const env = { ...page.env(), console: { debug: (...a) => debug.push(a) } };
  const Herald = loadClassic(env);
  return { Herald, herald, idb, page, debug };
}

async function rejectsWith(promise, code) {
  let err;
  await promise.then(
    () => assert.fail(`expected a HeraldError ${code}`),
    (e) => (err = e)
  );
  assert.equal(err.name, "HeraldError");
  assert.equal(err.code, code, err.message);
  return err;
}

describe("support and permission", () => {
  test("isSupported needs serviceWorker, PushManager and Notification", () => {
    assert.equal(loadClassic({}).isSupported(), false);
    const page = fakePage();
    assert.equal(loadClassic(page.env()).isSupported(), true);
    assert.equal(loadClassic({ ...page.env(), PushManager: undefined }).isSupported(), false);
    assert.equal(loadClassic({ ...page.env(), Notification: undefined }).isSupported(), false);
  });

  test("permission() mirrors Notification.permission, or 'unsupported'", async () => {
    const { Herald, herald } = setup({ permission: "denied" });
    assert.equal(Herald.init({ url: URL_, publicKey: PK }).permission(), "denied");
    const bare = loadClassic({ fetch: herald.fetch });
    assert.equal(bare.init({ url: URL_, publicKey: PK }).permission(), "unsupported");
  });

  test("init validates its options", () => {
    const Herald = loadClassic({});
    assert.throws(() => Herald.init({ publicKey: PK }), (e) => e.code === "invalid_config" && e instanceof Herald.HeraldError);
    assert.throws(() => Herald.init({ url: URL_ }), (e) => e.code === "invalid_config");
    assert.doesNotThrow(() => Herald.init({ url: URL_, sessionId: "ses_abc" }));
  });

  test("iOS outside the Home Screen is unsupported with an actionable message", async () => {
    const herald = fakeHerald();
    const Herald = loadClassic({ navigator: { userAgent: IPHONE_UA }, fetch: herald.fetch });
    const err = await rejectsWith(Herald.init({ url: URL_, publicKey: PK }).subscribe(), "unsupported");
    assert.match(err.message, /Home Screen/);
    const desktop = loadClassic({ navigator: { userAgent: DESKTOP_UA }, fetch: herald.fetch });
    const err2 = await rejectsWith(desktop.init({ url: URL_, publicKey: PK }).subscribe(), "unsupported");
    assert.doesNotMatch(err2.message, /Home Screen/);
  });
});

describe("subscribe", () => {
  test("registers the worker, subscribes with the VAPID key, upserts and stores the state", async () => {
    const { Herald, herald, idb, page } = setup({}, { vapid: vapidKey(3) });
    const client = Herald.init({ url: URL_ + "/", publicKey: PK, channelId: "ch_web", userToken: "jwt.a.b" });
    const record = await client.subscribe({ topics: ["news"] });

    assert.equal(page.prompts, 1);
    assert.deepEqual(page.registerCalls, [["/herald-sw.js", { scope: "/" }]]);

    const vapidCall = herald.callsTo("GET", "/v1/me/vapid")[0];
    assert.equal(vapidCall.url, "https://push.example.com/v1/me/vapid?channel_id=ch_web");
    assert.equal(vapidCall.headers.authorization, "Bearer pk_test_123");
    assert.equal(vapidCall.headers["x-herald-user-token"], "jwt.a.b");

    assert.equal(page.pushManager.subscribeCalls.length, 1);
    const opts = page.pushManager.subscribeCalls[0];
    assert.equal(opts.userVisibleOnly, true);
    assert.equal(Buffer.from(opts.applicationServerKey).toString("base64url"), vapidKey(3));

    const sub = page.pushManager.current.toJSON();
    const post = herald.callsTo("POST", "/v1/me/subscriptions")[0];
    assert.deepEqual(post.body, {
      channel_id: "ch_web",
      settings: { endpoint: sub.endpoint, keys: { p256dh: sub.keys.p256dh, auth: sub.keys.auth } },
      topics: ["news"],
    });
    assert.equal(post.headers["content-type"], "application/json");

    assert.equal(record.id, 1);
    assert.deepEqual(record.topics, ["news"]);
    assert.equal("renewal_token" in record, false, "the renewal token stays with the worker");

    const state = idb.peek();
    assert.equal(state.url, URL_);
    assert.equal(state.subscriptionId, 1);
    assert.equal(state.endpoint, sub.endpoint);
    assert.match(state.p256dh, /^p256dh-\d+$/);
    assert.equal(state.p256dh, sub.keys.p256dh);
    assert.equal(state.auth, sub.keys.auth);
    assert.equal(state.vapidKey, vapidKey(3));
    assert.equal(state.channelId, "ch_web");
    assert.match(state.renewalToken, /^rnw_1_/);
    assert.ok(Math.abs(state.syncedAt - Date.now()) < 5000);
  });

  test("without channelId it asks for the default channel and stores the one Herald names", async () => {
    const { Herald, herald, idb } = setup({}, { channelId: "ch_default" });
    await Herald.init({ url: URL_, publicKey: PK, serviceWorker: "/sw.js" }).subscribe();
    assert.equal(herald.callsTo("GET", "/v1/me/vapid")[0].path, "/v1/me/vapid");
    assert.equal(herald.callsTo("POST", "/v1/me/subscriptions")[0].body.channel_id, "ch_default");
    assert.equal("topics" in herald.callsTo("POST", "/v1/me/subscriptions")[0].body, false);
    assert.equal(idb.peek().channelId, "ch_default");
  });

  test("reuses a browser subscription made with the same key", async () => {
    const { Herald, page } = setup();
    const client = Herald.init({ url: URL_, publicKey: PK });
    await client.subscribe();
    const first = page.pushManager.current;
    await client.subscribe();
    assert.equal(page.pushManager.current, first);
    assert.equal(first.unsubscribed, false);
    assert.equal(page.pushManager.subscribeCalls.length, 1);
  });

  test("replaces a browser subscription made with another key", async () => {
    const idb = fakeIndexedDB();
    const a = setup({ idb }, { vapid: vapidKey(1) });
    await a.Herald.init({ url: URL_, publicKey: PK }).subscribe();
    const old = a.page.pushManager.current;

    // Same browser, Herald now answers another key.
    const b = setup({ idb }, { vapid: vapidKey(2) });
    b.page.pushManager.current = old;
    const record = await b.Herald.init({ url: URL_, publicKey: PK }).subscribe();
    assert.equal(old.unsubscribed, true);
    assert.equal(b.page.pushManager.subscribeCalls.length, 1);
    assert.notEqual(b.page.pushManager.current, old);
    assert.equal(record.identifier, b.page.pushManager.current.endpoint);
    assert.equal(idb.peek().vapidKey, vapidKey(2));
  });

  test("outside a user gesture it refuses before prompting", async () => {
    const { Herald, page, herald } = setup({ active: false });
    const err = await rejectsWith(Herald.init({ url: URL_, publicKey: PK }).subscribe(), "not_in_gesture");
    assert.match(err.message, /click handler/);
    assert.equal(page.prompts, 0);
    assert.equal(herald.calls.length, 0);
  });

  test("outside a gesture is fine once permission is granted (no prompt to show)", async () => {
    const { Herald } = setup({ active: false, permission: "granted" });
    const record = await Herald.init({ url: URL_, publicKey: PK }).subscribe();
    assert.equal(record.status, "active");
  });

  test("a denied or dismissed prompt rejects with permission_denied", async () => {
    for (const prompt of ["denied", "default"]) {
      const { Herald, page, herald } = setup({ prompt });
      await rejectsWith(Herald.init({ url: URL_, publicKey: PK }).subscribe(), "permission_denied");
      assert.equal(page.registerCalls.length, 0);
      assert.equal(herald.calls.length, 0);
    }
  });

  test("supports the callback-only requestPermission of old Safari", async () => {
    const { Herald, page } = setup();
    page.Notification.requestPermission = (cb) => void setTimeout(() => cb("granted"), 0);
    const record = await Herald.init({ url: URL_, publicKey: PK }).subscribe();
    assert.equal(record.id, 1);
  });

  test("a server error carries Herald's code, status and message", async () => {
    const { Herald, herald } = setup();
    herald.override((c) =>
      c.path === "/v1/me/subscriptions"
        ? herald.json(422, { error: { code: "validation_failed", message: "settings.endpoint must be https", status: 422, request_id: "req_1" } })
        : null
    );
    const err = await rejectsWith(Herald.init({ url: URL_, publicKey: PK }).subscribe(), "validation_failed");
    assert.equal(err.status, 422);
    assert.equal(err.requestId, "req_1");
    assert.match(err.message, /settings.endpoint must be https/);
    assert.ok(err instanceof Herald.HeraldError && err instanceof Error);
  });

  test("a fetch that throws is a network error naming the URL", async () => {
    const { Herald } = setup();
    const err = await rejectsWith(Herald.init({ url: "https://wrong.example.com", publicKey: PK }).subscribe(), "network");
    assert.equal(err.status, undefined);
    assert.match(err.message, /wrong\.example\.com/);
  });

  test("a non-JSON error body still gives a status-based code", async () => {
    const { Herald, herald } = setup();
    herald.override(() => new Response("<html>Bad gateway</html>", { status: 502 }));
    const err = await rejectsWith(Herald.init({ url: URL_, publicKey: PK }).subscribe(), "http_502");
    assert.equal(err.status, 502);
  });
});

describe("credentials", () => {
  test("a userToken function is called once, then again once after a 401", async () => {
    const { Herald, herald } = setup();
    let n = 0;
    const client = Herald.init({ url: URL_, publicKey: PK, userToken: async () => `jwt-${++n}` });
    await client.inbox.list();
    await client.inbox.list();
    assert.equal(n, 1);
    assert.deepEqual(herald.calls.map((c) => c.headers["x-herald-user-token"]), ["jwt-1", "jwt-1"]);

    let rejectOnce = true;
    herald.override((c) => {
      if (rejectOnce && c.headers["x-herald-user-token"] === "jwt-1") {
        return herald.json(401, { error: { code: "unauthenticated", message: "user token expired", status: 401 } });
      }
      return null;
    });
    const page = await client.inbox.list();
    assert.equal(page.data[0].id, "ntf_1");
    assert.equal(n, 2);
    assert.deepEqual(herald.calls.slice(2).map((c) => c.headers["x-herald-user-token"]), ["jwt-1", "jwt-2"]);

    // A token Herald keeps refusing: one retry only, then the server's error.
    herald.override(() => herald.json(401, { error: { code: "unauthenticated", message: "user token signature invalid", status: 401 } }));
    const before = herald.calls.length;
    const err = await rejectsWith(client.inbox.list(), "unauthenticated");
    assert.equal(err.status, 401);
    assert.equal(herald.calls.length - before, 2);
  });

  test("a session replaces the public key; a dev user id is sent as x-herald-user-id", async () => {
    const { Herald, herald } = setup();
    await Herald.init({ url: URL_, sessionId: "ses_xyz", publicKey: PK }).inbox.list();
    await Herald.init({ url: URL_, publicKey: PK, userId: "user-42" }).inbox.list();
    const [ses, dev] = herald.calls;
    assert.equal(ses.headers.authorization, "Bearer ses_xyz");
    assert.equal(ses.headers["x-herald-user-token"], undefined);
    assert.equal(dev.headers.authorization, "Bearer pk_test_123");
    assert.equal(dev.headers["x-herald-user-id"], "user-42");
  });
});

describe("topics, inbox, unsubscribe", () => {
  test("topics need a subscription, then PUT/DELETE the encoded name", async () => {
    const { Herald, herald, idb } = setup();
    const client = Herald.init({ url: URL_, publicKey: PK });
    await rejectsWith(client.topics.add("news"), "not_subscribed");
    await client.subscribe();
    const added = await client.topics.add("sports/eu cup");
    assert.deepEqual(added.topics, ["sports/eu cup"]);
    assert.equal(herald.callsTo("PUT", "/v1/me/subscriptions/")[0].path, "/v1/me/subscriptions/1/topics/sports%2Feu%20cup");
    assert.deepEqual(idb.peek().topics, ["sports/eu cup"]);
    const removed = await client.topics.remove("sports/eu cup");
    assert.deepEqual(removed.topics, []);
    assert.equal(herald.callsTo("DELETE", "/v1/me/subscriptions/")[0].path, "/v1/me/subscriptions/1/topics/sports%2Feu%20cup");
  });

  test("inbox.list passes cursor and limit; markRead posts", async () => {
    const { Herald, herald } = setup();
    const client = Herald.init({ url: URL_, publicKey: PK });
    const page = await client.inbox.list({ cursor: "c 1", limit: 20 });
    assert.deepEqual(page, { data: [{ id: "ntf_1", title: "Hi", read_at: null }], next_cursor: null });
    assert.equal(herald.calls[0].path, "/v1/me/notifications?cursor=c%201&limit=20");
    const read = await client.inbox.markRead("ntf_1");
    assert.equal(read.id, "ntf_1");
    assert.equal(herald.calls[1].method, "POST");
    assert.equal(herald.calls[1].path, "/v1/me/notifications/ntf_1/read");
  });

  test("unsubscribe deletes at Herald and in the browser, and forgets the state", async () => {
    const { Herald, herald, idb, page } = setup();
    const client = Herald.init({ url: URL_, publicKey: PK });
    await client.subscribe();
    const sub = page.pushManager.current;
    await client.unsubscribe();
    assert.equal(herald.callsTo("DELETE", "/v1/me/subscriptions/1").length, 1);
    assert.equal(herald.subs.size, 0);
    assert.equal(sub.unsubscribed, true);
    assert.equal(idb.peek(), undefined);
    await rejectsWith(client.topics.add("x"), "not_subscribed");
  });

  test("unsubscribe tolerates 404 but keeps everything on other errors", async () => {
    const { Herald, herald, idb, page } = setup();
    const client = Herald.init({ url: URL_, publicKey: PK });
    await client.subscribe();
    herald.override((c) => (c.method === "DELETE" ? herald.json(500, { error: { code: "internal_error", message: "internal server error", status: 500 } }) : null));
    await rejectsWith(client.unsubscribe(), "internal_error");
    assert.equal(page.pushManager.current.unsubscribed, false);
    assert.equal(idb.peek().subscriptionId, 1);

    herald.overrides.length = 0;
    herald.subs.clear(); // already gone at Herald: 404
    await client.unsubscribe();
    assert.equal(page.pushManager.current, null);
    assert.equal(idb.peek(), undefined);
  });
});

describe("re-sync on init", () => {
  /** A returning visitor: permission granted, worker registered, subscription and state stored. */
  async function returning(mutate) {
    const idb = fakeIndexedDB();
    const first = setup({ idb });
    await first.Herald.init({ url: URL_, publicKey: PK }).subscribe({ topics: ["news"] });
    const state = idb.peek();
    const again = setup({ idb, permission: "granted" });
    again.page.markRegistered();
    again.page.pushManager.current = first.page.pushManager.current;
    again.herald.subs.set(1, first.herald.subs.get(1));
    if (mutate) mutate(again, state);
    return { ...again, state };
  }

  test("nothing to do when endpoint and keys match and the last sync is recent", async () => {
    const { Herald, herald } = await returning();
    const client = Herald.init({ url: URL_, publicKey: PK });
    assert.equal(await client.ready, false);
    assert.equal(herald.calls.length, 0);
  });

  test("upserts again when the last sync is older than 7 days", async () => {
    const { Herald, herald, idb, state } = await returning((env, s) => env.idb.seed({ ...s, syncedAt: Date.now() - 8 * 86400e3 }));
    assert.equal(await Herald.init({ url: URL_, publicKey: PK }).ready, true);
    const post = herald.callsTo("POST", "/v1/me/subscriptions");
    assert.equal(post.length, 1);
    assert.equal(post[0].body.settings.endpoint, state.endpoint);
    assert.equal("topics" in post[0].body, false, "same subscription: topics are left alone");
    assert.ok(Date.now() - idb.peek().syncedAt < 5000);
  });

  test("renews with the stored renewal token when the browser's subscription changed", async () => {
    const { Herald, herald, idb, page, state } = await returning((env) => {
      env.page.pushManager.current.endpoint = "https://push.example.net/ep/rotated";
    });
    assert.equal(await Herald.init({ url: URL_, publicKey: PK }).ready, true);
    assert.equal(page.prompts, 0);
    const [renewal] = herald.callsTo("POST", "/v1/renewals");
    assert.equal(renewal.body.token, state.renewalToken);
    assert.equal(renewal.body.settings.endpoint, "https://push.example.net/ep/rotated");
    assert.equal(renewal.headers.authorization, undefined, "the renewal token is the only credential");
    assert.equal(herald.callsTo("POST", "/v1/me/subscriptions").length, 0);
    assert.deepEqual(herald.subs.get(2).topics, ["news"], "Herald carries the topics over");
    assert.equal(herald.subs.get(1).inactive_reason, "replaced");
    const s = idb.peek();
    assert.equal(s.endpoint, "https://push.example.net/ep/rotated");
    assert.equal(s.subscriptionId, 2);
    assert.match(s.renewalToken, /^rnw_2_/);
  });

  test("registers the new endpoint (carrying topics) when the renewal is refused", async () => {
    const { Herald, herald, idb } = await returning((env) => {
      env.page.pushManager.current.endpoint = "https://push.example.net/ep/rotated";
    });
    herald.override((c) => (c.path === "/v1/renewals" ? herald.json(410, { error: { code: "gone", message: "already renewed", status: 410 } }) : null));
    assert.equal(await Herald.init({ url: URL_, publicKey: PK }).ready, true);
    const post = herald.callsTo("POST", "/v1/me/subscriptions")[0];
    assert.equal(post.body.settings.endpoint, "https://push.example.net/ep/rotated");
    assert.deepEqual(post.body.topics, ["news"]);
    assert.equal(idb.peek().endpoint, "https://push.example.net/ep/rotated");
    assert.equal(idb.peek().subscriptionId, 2);
  });

  test("re-subscribes silently with the stored key when the browser lost the subscription", async () => {
    const { Herald, herald, page, state } = await returning((env) => (env.page.pushManager.current = null));
    assert.equal(await Herald.init({ url: URL_, publicKey: PK }).ready, true);
    assert.equal(page.prompts, 0);
    assert.equal(Buffer.from(page.pushManager.subscribeCalls[0].applicationServerKey).toString("base64url"), state.vapidKey);
    assert.equal(herald.callsTo("POST", "/v1/renewals").length, 1);
    assert.equal(herald.callsTo("POST", "/v1/me/subscriptions").length, 0);
  });

  test("does nothing without granted permission", async () => {
    const idb = fakeIndexedDB();
    const first = setup({ idb });
    await first.Herald.init({ url: URL_, publicKey: PK }).subscribe();
    idb.seed({ ...idb.peek(), syncedAt: 0 });
    const again = setup({ idb, permission: "default" });
    again.page.markRegistered();
    assert.equal(await again.Herald.init({ url: URL_, publicKey: PK }).ready, false);
    assert.equal(again.herald.calls.length, 0);
  });

  test("failures are swallowed and logged", async () => {
    const { Herald, herald, debug } = await returning((env, s) => env.idb.seed({ ...s, syncedAt: 0 }));
    herald.override(() => {
      throw new TypeError("Failed to fetch");
    });
    assert.equal(await Herald.init({ url: URL_, publicKey: PK }).ready, false);
    assert.equal(debug.length, 1);
    assert.equal(debug[0][2].code, "network");
  });
});

describe("service worker registration", () => {
  test("waits for the worker to activate before subscribing", async () => {
    const { Herald, page } = setup();
    await Herald.init({ url: URL_, publicKey: PK }).subscribe();
    assert.equal(page.registration.active.state, "activated");
    assert.equal(page.pushManager.subscribeCalls.length, 1);
  });

  test("a worker that cannot be registered is a service_worker error", async () => {
    const { Herald, herald } = setup({ registerError: new TypeError("ServiceWorker script at /nope.js returned 404") });
    const err = await rejectsWith(Herald.init({ url: URL_, publicKey: PK, serviceWorker: "/nope.js" }).subscribe(), "service_worker");
    assert.match(err.message, /\/nope\.js/);
    assert.match(err.message, /404/);
    assert.equal(herald.calls.length, 0);
  });

  test("another scope: registered there, state kept apart from the root scope's", async () => {
    const { Herald, idb, page } = setup();
    await Herald.init({ url: URL_, publicKey: PK }).subscribe();
    const root = idb.peek();
    await Herald.init({ url: URL_, publicKey: PK, serviceWorker: "/sw.js", scope: "/push/b/" }).subscribe();
    assert.deepEqual(page.registerCalls[1], ["/sw.js", { scope: "/push/b/" }]);
    const scoped = page.registrationFor("/push/b/").pushManager.current;
    assert.ok(scoped && scoped !== page.pushManager.current, "its own push subscription");
    assert.equal(idb.peek("herald", "state", "current:/push/b/").endpoint, scoped.endpoint);
    assert.deepEqual(idb.peek(), root, "the root scope's state is untouched");
  });
});

describe("pairing mode", () => {
  const CODE = "pc_Abc-123";
  function paired(opts = {}, pageOpts = {}) {
    const env = setup(pageOpts, { vapid: vapidKey(7) });
    env.herald.codes.set(CODE, { user: "carol", channel_id: "ch_paired" });
    const client = env.Herald.init({ url: URL_, pairingCode: CODE, vapidKey: vapidKey(7), ...opts });
    return { ...env, client };
  }

  test("init needs the VAPID key, and no public key", () => {
    const Herald = loadClassic({});
    assert.throws(() => Herald.init({ url: URL_, pairingCode: CODE }), (e) => e.code === "invalid_config" && /vapidKey/.test(e.message));
    assert.doesNotThrow(() => Herald.init({ url: URL_, pairingCode: CODE, vapidKey: vapidKey(1) }));
  });

  test("subscribe redeems the code with the browser's subscription and stores the renewal token", async () => {
    const { client, herald, idb, page } = paired();
    const record = await client.subscribe({ topics: ["news"] });
    assert.equal(herald.callsTo("GET", "/v1/me/vapid").length, 0, "the key came with init");
    assert.equal(Buffer.from(page.pushManager.subscribeCalls[0].applicationServerKey).toString("base64url"), vapidKey(7));
    const [pair] = herald.calls;
    assert.equal(pair.method, "POST");
    assert.equal(pair.url, "https://push.example.com/v1/pair/pc_Abc-123");
    assert.equal(pair.headers.authorization, undefined, "the code is the only credential");
    assert.equal(pair.headers["x-herald-user-id"], undefined);
    const sub = page.pushManager.current.toJSON();
    assert.deepEqual(pair.body, { settings: { endpoint: sub.endpoint, keys: sub.keys }, topics: ["news"] });
    assert.equal(record.user, "carol");
    assert.equal(record.channel_id, "ch_paired");
    assert.equal("renewal_token" in record, false);
    const state = idb.peek();
    assert.equal(state.url, URL_);
    assert.equal(state.subscriptionId, record.id);
    assert.equal(state.channelId, "ch_paired");
    assert.equal(state.vapidKey, vapidKey(7));
    assert.match(state.renewalToken, /^rnw_/);
  });

  test("a used or unknown code rejects with Herald's code", async () => {
    const { client, Herald } = paired();
    await client.subscribe();
    const used = await rejectsWith(client.subscribe(), "gone");
    assert.equal(used.status, 410);
    const unknown = await rejectsWith(Herald.init({ url: URL_, pairingCode: "nope", vapidKey: vapidKey(7) }).subscribe(), "not_found");
    assert.equal(unknown.status, 404);
  });

  test("the hosted page's setup: Herald's worker at a per-channel scope", async () => {
    const { client, idb, page } = paired({ serviceWorker: "/sw.js", scope: "/push/ch_paired/" });
    await client.subscribe();
    assert.deepEqual(page.registerCalls, [["/sw.js", { scope: "/push/ch_paired/" }]]);
    assert.ok(page.registrationFor("/push/ch_paired/").pushManager.current);
    assert.equal(page.pushManager.current, null, "nothing at the root scope");
    assert.equal(idb.peek(), undefined);
    assert.equal(idb.peek("herald", "state", "current:/push/ch_paired/").channelId, "ch_paired");
  });

  test("calls that need client credentials say so; unsubscribe is browser-only", async () => {
    const { client, herald, idb, page } = paired();
    await client.subscribe();
    await rejectsWith(client.inbox.list(), "invalid_config");
    await rejectsWith(client.topics.add("x"), "invalid_config");
    const before = herald.calls.length;
    const sub = page.pushManager.current;
    await client.unsubscribe();
    assert.equal(herald.calls.length, before, "no call to Herald");
    assert.equal(sub.unsubscribed, true);
    assert.equal(idb.peek(), undefined);
  });

  test("re-sync renews a changed subscription; a stale one is left alone", async () => {
    const idb = fakeIndexedDB();
    const first = paired({}, { idb });
    await first.client.subscribe();
    const state = idb.peek();

    const again = setup({ idb, permission: "granted" }, { vapid: vapidKey(7) });
    again.page.markRegistered();
    again.page.pushManager.current = first.page.pushManager.current;
    again.herald.subs.set(state.subscriptionId, first.herald.subs.get(state.subscriptionId));
    idb.seed({ ...state, syncedAt: 0 });
    assert.equal(await again.Herald.init({ url: URL_, pairingCode: CODE, vapidKey: vapidKey(7) }).ready, false);
    assert.equal(again.herald.calls.length, 0);

    again.page.pushManager.current.endpoint = "https://push.example.net/ep/rotated";
    assert.equal(await again.Herald.init({ url: URL_, pairingCode: CODE, vapidKey: vapidKey(7) }).ready, true);
    assert.equal(again.herald.calls.map((c) => c.path).join(), "/v1/renewals");
    assert.equal(idb.peek().endpoint, "https://push.example.net/ep/rotated");
  });
});
