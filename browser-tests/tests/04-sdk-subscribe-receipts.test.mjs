// Herald's SDK as an app uses it: the page on the app's origin loads /sdk/herald.js from Herald's
// origin, the app's worker (/herald-sw.js) imports Herald's /sdk/herald-sw.js, and subscribe()
// runs on a real click with a user JWT minted by "the app's backend" (an ES256 signing key
// registered with Herald). A send through Herald is shown by Herald's worker, which reports the
// displayed / clicked / dismissed receipts back to Herald across origins.

import {
  clickNotification,
  clickNotificationAction,
  closeNotification,
  openSdkApp,
  sdkSubscribe,
  shownNotifications,
  waitForHeraldNotification,
  waitForNotification,
} from "../lib/flows.mjs";
import { assert, assertEqual, sleep, waitFor } from "../lib/util.mjs";

export default [
  {
    name: "SDK subscribe on a click, then displayed, clicked, action and dismissed receipts",
    async run(ctx) {
      const user = "alice";
      const account = await ctx.account();
      const channel = await account.createWebPushChannel();
      const mint = await account.userTokenMinter();
      const browser = await ctx.browser();
      await openSdkApp(browser, ctx.app);

      // --- subscribe ----------------------------------------------------------------------------
      const init = { url: ctx.herald.url, publicKey: account.pk, userToken: mint(user), serviceWorker: "/herald-sw.js" };
      const sub = await sdkSubscribe(browser, init, { tokenFunction: true, subscribe: { topics: ["news"] } });
      assert(sub.ok, `subscribe resolved (${JSON.stringify(sub.error)})`);
      const record = sub.record;
      ctx.log(`subscribed: ${JSON.stringify(record)}`);
      assertEqual([record.user, record.channel_id, record.status, record.topics], [user, channel.id, "active", ["news"]], "the record");
      assert(!("renewal_token" in record), "subscribe() keeps the renewal token to itself");
      assert(record.settings && !("auth" in record.settings), "the auth secret is not in the answer");
      const browserSub = await browser.m.execute("return window.harness.subscription()");
      assertEqual(record.identifier, browserSub.endpoint, "Herald has the browser's endpoint");
      const state = await browser.m.execute("return window.harness.heraldState()");
      assertEqual([state.url, state.subscriptionId, state.endpoint, state.vapidKey], [ctx.herald.url, record.id, browserSub.endpoint, channel.vapid_public_key], "the stored state");
      assert(typeof state.renewalToken === "string" && state.renewalToken.length > 10, "a renewal token is stored for the worker");
      const registration = await browser.m.execute(
        "const r = await navigator.serviceWorker.getRegistration('/'); return {scope: r.scope, script: r.active && r.active.scriptURL}",
      );
      assertEqual(registration, { scope: `${ctx.app.origin}/`, script: `${ctx.app.origin}/herald-sw.js` }, "the app's worker at /");

      // --- displayed, then a click (and the url opens) --------------------------------------------
      const nonce = Date.now();
      // (Not index.html: its app.js registers the other test worker, /sw.js, at the same scope.)
      const url = `${ctx.app.origin}/sdk.html?opened=${nonce}`;
      const first = { title: "Order shipped", body: `arrives Tuesday ${nonce}` };
      // web_push is merged into the payload: requireInteraction keeps the alert open (no 20 s auto-close).
      const sent = await account.send({ to: { user }, ...first, url, data: { order: 42 }, web_push: { requireInteraction: true } });
      const shown = await waitForNotification(browser, (n) => n.body === first.body);
      assertEqual(shown.title, first.title, "title shown by Herald's worker");
      assertEqual(shown.data?.url, url, "the notification keeps the url");
      assertEqual(shown.data?.app, { order: 42 }, "the send's data");
      assertEqual(shown.data?.herald?.notification_id, sent.id, "the herald block names the notification");
      assert(typeof shown.data?.herald?.receipt === "string", "the push carried a receipt token");

      let n = await waitForHeraldNotification(account, sent.id, "counts.displayed == 1", (x) => x.counts?.displayed === 1);
      assertEqual(n.counts.clicked, 0, "not clicked yet");
      assert(n.deliveries?.[0]?.displayed_at, "the delivery's displayed_at");

      const after = ctx.app.lastSeq;
      await clickNotification(browser, first);
      n = await waitForHeraldNotification(account, sent.id, "counts.clicked == 1", (x) => x.counts?.clicked === 1);
      const clicked = n.deliveries[0];
      assert(clicked.clicked_at, "the delivery's clicked_at");
      assertEqual(clicked.clicked_action, null, "a click on the notification itself has no action");
      await waitFor(`a tab showing ${url}`, async () => {
        const tabs = await browser.m.chrome(
          "return [...Services.wm.getEnumerator('navigator:browser')].flatMap((w) => w.gBrowser.tabs.map((t) => t.linkedBrowser.currentURI.spec))",
        );
        return tabs.includes(url);
      });
      // Firefox closes a clicked alert (notificationclose): Herald's worker does not call that a dismissal.
      await ctx.app.waitForEvent("notificationclose", { after, pred: (e) => e.notification.body === first.body });
      await sleep(500);
      n = await account.getNotification(sent.id);
      assertEqual(n.deliveries[0].dismissed_at, null, "a clicked notification is not dismissed");

      // --- an action button ------------------------------------------------------------------------
      const second = { title: "New reply", body: `action ${nonce}` };
      const sent2 = await account.send({
        to: { user }, ...second,
        actions: [{ action: "archive", title: "Archive" }, { action: "reply", title: "Reply" }],
        web_push: { requireInteraction: true },
      });
      await waitForNotification(browser, (x) => x.body === second.body);
      await waitForHeraldNotification(account, sent2.id, "displayed", (x) => x.counts?.displayed === 1);
      await clickNotificationAction(browser, second, "archive");
      n = await waitForHeraldNotification(account, sent2.id, "counts.clicked == 1", (x) => x.counts?.clicked === 1);
      assertEqual(n.deliveries[0].clicked_action, "archive", "the delivery's clicked_action");

      // --- the close button: dismissed ---------------------------------------------------------------
      const third = { title: "Dismiss me", body: `close ${nonce}` };
      const sent3 = await account.send({ to: { user }, ...third, web_push: { requireInteraction: true } });
      await waitForNotification(browser, (x) => x.body === third.body);
      await closeNotification(browser, third);
      n = await waitForHeraldNotification(account, sent3.id, "dismissed_at", (x) => x.deliveries?.[0]?.dismissed_at);
      assertEqual([n.counts.displayed, n.counts.clicked, n.deliveries[0].clicked_at], [1, 0, null], "dismissed, not clicked");
      await waitFor("the dismissed notification to leave getNotifications()", async () =>
        !(await shownNotifications(browser)).some((x) => x.body === third.body),
      );
    },
  },
];
