import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { loadClassic, loadWorker } from "./load.mjs";
import { fakeHerald, fakeIndexedDB, fakePage, fakeWorker, vapidKey } from "./fakes.mjs";

const HERALD = "https://push.example.com";
const APP_SW = "https://app.example.com/herald-sw.js";

/** A worker whose page subscribed earlier: state stored with Herald's URL; Herald knows the subscription. */
function worker({ location = APP_SW, scriptUrl, state = {}, extra, herald = fakeHerald(), scope, stateKey = "current" } = {}) {
  const idb = fakeIndexedDB();
  if (state) {
    idb.seed({
      url: HERALD, subscriptionId: 7, endpoint: "https://push.example.net/ep/old", p256dh: "p-old", auth: "a-old",
      vapidKey: vapidKey(5), channelId: "ch_web", renewalToken: "rnw_old", topics: ["news"], syncedAt: 1, ...state,
    }, "herald", "state", stateKey);
    herald.subs.set(7, {
      id: 7, user: "u_1", channel_id: "ch_web", channel_type: "web_push", identifier: "https://push.example.net/ep/old",
      settings: { endpoint: "https://push.example.net/ep/old", keys: { p256dh: "p-old", auth: "a-old" } },
      status: "active", inactive_reason: null, topics: ["news"], renewal_token: "rnw_old",
    });
  }
  const w = fakeWorker({ location, scope, idb, fetch: herald.fetch, extra });
  loadWorker(w.self, scriptUrl || location);
  return { w, idb, herald };
}

const receipts = (herald) => herald.calls.filter((c) => c.method === "POST" && c.url.endsWith("/v1/receipts"));

describe("push", () => {
  test("shows Herald's payload and reports it displayed", async () => {
    const { w, herald } = worker();
    const payload = {
      title: "Order shipped", body: "Arrives Tuesday", icon: "/i.png", image: "/big.png", badge: "/b.png", tag: "order-1",
      url: "/orders/1", actions: [{ action: "track", title: "Track" }, { action: "bad" }], data: { order: 1 },
      herald: { notification_id: "ntf_1", delivery_id: "dlv_1", receipt: "rct_abc" },
    };
    await w.dispatch("push", { data: w.pushData(payload) });
    assert.equal(w.shown.length, 1);
    const { title, options } = w.shown[0];
    assert.equal(title, "Order shipped");
    assert.equal(options.body, "Arrives Tuesday");
    assert.equal(options.icon, "/i.png");
    assert.equal(options.image, "/big.png");
    assert.equal(options.badge, "/b.png");
    assert.equal(options.tag, "order-1");
    assert.deepEqual(options.actions, [{ action: "track", title: "Track" }]);
    assert.deepEqual(options.data, {
      url: "/orders/1",
      herald: { notification_id: "ntf_1", delivery_id: "dlv_1", receipt: "rct_abc" },
      app: { order: 1 },
    });
    const [r] = receipts(herald);
    assert.equal(r.url, HERALD + "/v1/receipts");
    assert.deepEqual(r.body, { token: "rct_abc", event: "displayed" });
    assert.equal(r.headers.authorization, undefined, "receipts carry no other credential");
    assert.equal(r.headers["content-type"], "application/json");
  });

  test("shows the declarative shape and sets the app badge", async () => {
    const { w, herald } = worker();
    const payload = {
      web_push: 8030,
      notification: {
        title: "New message", body: "Hi!", navigate: "https://app.example.com/chat/9", tag: "chat-9",
        actions: [{ action: "reply", title: "Reply", navigate: "https://app.example.com/chat/9#reply" }],
        data: { herald: { receipt: "rct_decl" }, app: { chat: 9 } },
      },
      app_badge: 3,
      mutable: true,
    };
    await w.dispatch("push", { data: w.pushData(payload) });
    const { title, options } = w.shown[0];
    assert.equal(title, "New message");
    assert.equal(options.body, "Hi!");
    assert.equal(options.tag, "chat-9");
    assert.deepEqual(options.actions, [{ action: "reply", title: "Reply" }]);
    assert.equal(options.data.url, "https://app.example.com/chat/9");
    assert.deepEqual(options.data.herald, { receipt: "rct_decl" });
    assert.deepEqual(options.data.app, { chat: 9 });
    assert.deepEqual(options.data.action_urls, { reply: "https://app.example.com/chat/9#reply" });
    assert.deepEqual(w.badges, [3]);
    assert.deepEqual(receipts(herald)[0].body, { token: "rct_decl", event: "displayed" });
  });

  test("a numeric badge (the APNs badge of a send) sets the app badge, not the badge icon", async () => {
    const { w } = worker();
    await w.dispatch("push", { data: w.pushData({ title: "T", badge: 4, herald: { receipt: "r" } }) });
    assert.equal(w.shown[0].options.badge, undefined);
    assert.deepEqual(w.badges, [4]);
  });

  test("Herald's payload with web_push overrides (requireInteraction) keeps them", async () => {
    const { w } = worker();
    await w.dispatch("push", { data: w.pushData({ title: "T", requireInteraction: true, herald: { receipt: "r" } }) });
    assert.equal(w.shown[0].options.requireInteraction, true);
  });

  test("non-JSON text still shows a notification, without a receipt", async () => {
    const { w, herald } = worker();
    await w.dispatch("push", { data: w.pushData("plain words") });
    assert.equal(w.shown[0].title, "New notification");
    assert.equal(w.shown[0].options.body, "plain words");
    assert.equal(receipts(herald).length, 0);
  });

  test("JSON without a title gets a generic title; an empty push still shows something", async () => {
    const { w } = worker({ extra: { HERALD_DEFAULT_TITLE: "Acme" } });
    await w.dispatch("push", { data: w.pushData({ body: "no title here" }) });
    await w.dispatch("push", { data: null });
    assert.deepEqual(w.shown.map((s) => [s.title, s.options.body]), [["Acme", "no title here"], ["Acme", ""]]);
  });

  test("falls back to a plain notification when the options are refused", async () => {
    const { w, herald } = worker();
    w.failShowWithOptions = true;
    await w.dispatch("push", { data: w.pushData({ title: "T", body: "B", actions: [{ action: "a", title: "A" }], herald: { receipt: "r1" } }) });
    assert.equal(w.shown.length, 1);
    assert.equal(w.shown[0].options.actions, undefined);
    assert.equal(w.shown[0].options.body, "B");
    assert.equal(receipts(herald).length, 1);
  });

  test("a failing receipt does not fail the push event", async () => {
    const { w, herald } = worker();
    herald.override(() => herald.json(500, { error: { code: "internal_error", message: "x", status: 500 } }));
    await w.dispatch("push", { data: w.pushData({ title: "T", herald: { receipt: "r1" } }) });
    assert.equal(w.shown.length, 1);
  });
});

describe("clicks and dismissals", () => {
  const shownData = { url: "/orders/1", herald: { receipt: "rct_1" }, app: {} };

  test("click closes, reports clicked with the action, and focuses the matching window", async () => {
    const { w, herald } = worker();
    w.windowClient("https://app.example.com/");
    w.windowClient("https://app.example.com/orders/1");
    const n = w.notification(shownData);
    await w.dispatch("notificationclick", { notification: n, action: "track" });
    assert.equal(n.closed, true);
    assert.deepEqual(receipts(herald)[0].body, { token: "rct_1", event: "clicked", action: "track" });
    assert.deepEqual(w.focused, ["https://app.example.com/orders/1"]);
    assert.deepEqual(w.opened, []);
    assert.equal(w.matchAllOptions.includeUncontrolled, true);
  });

  test("click opens a window when none matches; no action means no action field", async () => {
    const { w, herald } = worker();
    w.windowClient("https://app.example.com/");
    await w.dispatch("notificationclick", { notification: w.notification(shownData), action: "" });
    assert.deepEqual(w.opened, ["https://app.example.com/orders/1"]);
    assert.deepEqual(receipts(herald)[0].body, { token: "rct_1", event: "clicked" });
  });

  test("a declarative action's navigate wins over the notification's", async () => {
    const { w } = worker();
    const data = { url: "https://app.example.com/chat/9", action_urls: { reply: "https://app.example.com/chat/9#reply" }, herald: {} };
    await w.dispatch("notificationclick", { notification: w.notification(data), action: "reply" });
    await w.dispatch("notificationclick", { notification: w.notification(data), action: "" });
    assert.deepEqual(w.opened, ["https://app.example.com/chat/9#reply", "https://app.example.com/chat/9"]);
  });

  test("click without a url opens nothing", async () => {
    const { w, herald } = worker();
    await w.dispatch("notificationclick", { notification: w.notification({ herald: { receipt: "r" } }), action: "" });
    assert.deepEqual(w.opened, []);
    assert.equal(receipts(herald).length, 1);
  });

  test("the close that follows a click is not a dismissal", async () => {
    const { w, herald } = worker();
    const n = w.notification(shownData);
    await w.dispatch("notificationclick", { notification: n, action: "" });
    await w.dispatch("notificationclose", { notification: n });
    assert.deepEqual(receipts(herald).map((r) => r.body.event), ["clicked"]);
  });

  test("close reports dismissed", async () => {
    const { w, herald } = worker();
    await w.dispatch("notificationclose", { notification: w.notification(shownData) });
    assert.deepEqual(receipts(herald)[0].body, { token: "rct_1", event: "dismissed" });
  });
});

describe("where Herald is", () => {
  const push = (w, herald = { receipt: "r" }) => w.dispatch("push", { data: w.pushData({ title: "T", herald }) });

  test("self.HERALD_URL wins over the stored url", async () => {
    const { w, herald } = worker({ extra: { HERALD_URL: "https://other.example.org/" } });
    herald.override((c) => (c.url.startsWith("https://other.example.org/") ? herald.json(204) : null));
    await push(w);
    assert.equal(receipts(herald)[0].url, "https://other.example.org/v1/receipts");
  });

  test("the payload's herald.url wins over the stored url", async () => {
    const { w, herald } = worker();
    herald.override((c) => (c.url.startsWith("https://eu.push.example.com/") ? herald.json(204) : null));
    await push(w, { receipt: "r", url: "https://eu.push.example.com" });
    assert.equal(receipts(herald)[0].url, "https://eu.push.example.com/v1/receipts");
  });

  test("imported from Herald with no stored state: the script's own URL", async () => {
    const { w, herald } = worker({
      state: null,
      location: "https://app.example.com/sw.js",
      scriptUrl: "https://push.example.com/base/sdk/herald-sw.js",
    });
    herald.override((c) => (c.url.startsWith("https://push.example.com/base/") ? herald.json(204) : null));
    await push(w);
    assert.equal(receipts(herald)[0].url, "https://push.example.com/base/v1/receipts");
  });

  test("no source at all: no receipt, still a notification", async () => {
    const { w, herald } = worker({ state: null });
    await push(w);
    assert.equal(w.shown.length, 1);
    assert.equal(herald.calls.length, 0);
  });
});

describe("lifecycle", () => {
  test("standalone: skipWaiting on install, clients.claim on activate", async () => {
    const { w } = worker();
    assert.equal(w.self.HeraldSW.standalone, true);
    await w.dispatch("install");
    await w.dispatch("activate");
    assert.equal(w.skipWaitingCalls, 1);
    assert.equal(w.claimCalls, 1);
  });

  test("imported into an app's worker: lifecycle left alone, unless asked", async () => {
    const { w } = worker({ location: "https://app.example.com/sw.js", scriptUrl: "https://push.example.com/sdk/herald-sw.js" });
    assert.equal(w.self.HeraldSW.standalone, false);
    assert.equal(w.self.HeraldSW.scriptUrl, "https://push.example.com/sdk/herald-sw.js");
    await w.dispatch("install");
    await w.dispatch("activate");
    assert.equal(w.skipWaitingCalls + w.claimCalls, 0);

    const forced = worker({
      location: "https://app.example.com/sw.js",
      scriptUrl: "https://push.example.com/sdk/herald-sw.js",
      extra: { HERALD_STANDALONE: true },
    });
    await forced.w.dispatch("install");
    assert.equal(forced.w.skipWaitingCalls, 1);
  });

  test("importing twice registers the listeners once", async () => {
    const { w } = worker();
    loadWorker(w.self, APP_SW);
    assert.equal(w.listeners.push.length, 1);
    assert.equal(w.listeners.notificationclick.length, 1);
  });
});

describe("pushsubscriptionchange", () => {
  test("renews with the browser's new subscription and updates the state", async () => {
    const { w, herald, idb } = worker();
    const newSubscription = {
      endpoint: "https://push.example.net/ep/new",
      toJSON: () => ({ endpoint: "https://push.example.net/ep/new", keys: { p256dh: "p-new", auth: "a-new" } }),
    };
    await w.dispatch("pushsubscriptionchange", { newSubscription, oldSubscription: null });
    const [r] = herald.callsTo("POST", "/v1/renewals");
    assert.equal(r.url, HERALD + "/v1/renewals");
    assert.deepEqual(r.body, {
      token: "rnw_old",
      settings: { endpoint: "https://push.example.net/ep/new", keys: { p256dh: "p-new", auth: "a-new" } },
    });
    assert.equal(r.headers.authorization, undefined);
    const s = idb.peek();
    assert.equal(s.subscriptionId, 8);
    assert.equal(s.endpoint, "https://push.example.net/ep/new");
    assert.equal(s.p256dh, "p-new");
    assert.equal(s.auth, "a-new");
    assert.match(s.renewalToken, /^rnw_8_/);
    assert.deepEqual(s.topics, ["news"]);
    assert.equal(herald.subs.get(7).inactive_reason, "replaced");
    assert.equal(s.vapidKey, vapidKey(5));
    assert.equal(s.url, HERALD);
    assert.ok(Date.now() - s.syncedAt < 5000);
  });

  test("subscribes itself with the stored VAPID key when the browser gives no new subscription", async () => {
    const { w, herald, idb } = worker();
    await w.dispatch("pushsubscriptionchange", { newSubscription: null, oldSubscription: null });
    const pm = w.self.registration.pushManager;
    assert.equal(pm.subscribeCalls.length, 1);
    assert.equal(pm.subscribeCalls[0].userVisibleOnly, true);
    assert.equal(Buffer.from(pm.subscribeCalls[0].applicationServerKey).toString("base64url"), vapidKey(5));
    assert.equal(herald.callsTo("POST", "/v1/renewals")[0].body.settings.endpoint, pm.current.endpoint);
    assert.equal(idb.peek().endpoint, pm.current.endpoint);
  });

  test("nothing to renew when the stored subscription is already the browser's (the page got there first)", async () => {
    const { w, herald } = worker();
    const same = {
      endpoint: "https://push.example.net/ep/old",
      toJSON: () => ({ endpoint: "https://push.example.net/ep/old", keys: { p256dh: "p-old", auth: "a-old" } }),
    };
    await w.dispatch("pushsubscriptionchange", { newSubscription: same });
    assert.equal(herald.callsTo("POST", "/v1/renewals").length, 0);
  });

  test("a worker at another scope renews the state of its own scope", async () => {
    const { w, herald, idb } = worker({ scope: "https://push.example.com/push/ch_web/", stateKey: "current:/push/ch_web/" });
    await w.dispatch("pushsubscriptionchange", { newSubscription: null });
    assert.equal(herald.callsTo("POST", "/v1/renewals")[0].body.token, "rnw_old");
    assert.equal(idb.peek("herald", "state", "current:/push/ch_web/").subscriptionId, 8);
    assert.equal(idb.peek(), undefined, "the root scope's record is not written");
  });

  test("a failed renewal leaves the state for the page to repair", async () => {
    const { w, herald, idb } = worker();
    herald.override(() => herald.json(410, { error: { code: "gone", message: "renewal token already used", status: 410 } }));
    await w.dispatch("pushsubscriptionchange", { newSubscription: null });
    assert.equal(idb.peek().renewalToken, "rnw_old");
    assert.equal(idb.peek().endpoint, "https://push.example.net/ep/old");
  });
});

test("the worker reads what the SDK stored (shared IndexedDB)", async () => {
  const herald = fakeHerald({ base: "https://herald.internal.example" });
  const idb = fakeIndexedDB();
  const page = fakePage({ idb, fetch: herald.fetch });
  const Herald = loadClassic(page.env());
  await Herald.init({ url: "https://herald.internal.example", publicKey: "pk_1" }).subscribe();

  const w = fakeWorker({ idb, fetch: herald.fetch });
  loadWorker(w.self);
  await w.dispatch("push", { data: w.pushData({ title: "T", herald: { receipt: "rct_x" } }) });
  assert.equal(receipts(herald)[0].url, "https://herald.internal.example/v1/receipts");

  await w.dispatch("pushsubscriptionchange", { newSubscription: null });
  const renewal = herald.callsTo("POST", "/v1/renewals")[0];
  assert.equal(renewal.body.token, herald.subs.get(1).renewal_token);
});
