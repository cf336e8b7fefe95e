// Renewal through Herald's worker: after an SDK subscribe, the push service drops the browser's
// subscription (control API "invalidate": Firefox gets a new UAID and fires
// `pushsubscriptionchange`, see 03). Herald's worker subscribes again with the stored VAPID key and
// sends POST /v1/renewals with the renewal token the SDK stored: Herald then has a new active
// subscription for the same user, channel and topics, the old one inactive / "replaced", and
// sends reach the browser again, with no page open and no call by the app.

import { openSdkApp, sdkSubscribe, waitForNotification } from "../lib/flows.mjs";
import { assert, assertEqual, waitFor } from "../lib/util.mjs";

export default [
  {
    name: "pushsubscriptionchange renews the subscription at Herald (POST /v1/renewals)",
    async run(ctx) {
      const user = "bob";
      const account = await ctx.account({ dev_mode: true });
      const channel = await account.createWebPushChannel();
      const browser = await ctx.browser();
      await openSdkApp(browser, ctx.app);
      const sub = await sdkSubscribe(
        browser,
        { url: ctx.herald.url, publicKey: account.pk, userId: user, serviceWorker: "/herald-sw.js" },
        { subscribe: { topics: ["news", "offers"] } },
      );
      assert(sub.ok, `subscribe resolved (${JSON.stringify(sub.error)})`);
      const old = sub.record;
      assertEqual([old.user, old.status], [user, "active"], "subscribed with the dev-mode user id");

      // Works before the change.
      const before = `before ${Date.now()}`;
      await account.send({ to: { user }, title: "Before", body: before });
      await waitForNotification(browser, (n) => n.body === before);

      const stored = await browser.m.execute("return window.harness.heraldState()");
      assertEqual(stored.subscriptionId, old.id, "the SDK stored the subscription");

      // The push service forgets the browser: Firefox fires pushsubscriptionchange.
      const after = ctx.app.lastSeq;
      await ctx.push.control("invalidate");
      const change = await ctx.app.waitForEvent("pushsubscriptionchange", { after });
      assertEqual(change.oldSubscription?.endpoint, old.identifier, "event.oldSubscription is the one Herald has");

      // Herald's worker renewed it: the old one is replaced, a new one is active.
      const replaced = await waitFor("the old subscription to be inactive/replaced", async () => {
        const s = await account.getSubscription(old.id);
        return s.status === "inactive" ? s : null;
      });
      assertEqual(replaced.inactive_reason, "replaced", "the old subscription's inactive_reason");
      const active = (await account.userSubscriptions(user)).filter((s) => s.status === "active");
      assertEqual(active.length, 1, "one active subscription for the user");
      const renewed = active[0];
      assert(renewed.id !== old.id && renewed.identifier !== old.identifier, "a new subscription with a new endpoint");
      assertEqual([renewed.user, renewed.channel_id, [...renewed.topics].sort()], [user, channel.id, ["news", "offers"]], "same user, channel and topics");

      const browserSub = await browser.m.execute("return window.harness.subscription()");
      assertEqual(renewed.identifier, browserSub.endpoint, "Herald has the browser's new endpoint");
      const state = await browser.m.execute("return window.harness.heraldState()");
      assertEqual([state.subscriptionId, state.endpoint], [renewed.id, browserSub.endpoint], "the worker updated the stored state");
      assert(state.renewalToken && state.renewalToken !== stored.renewalToken, "a fresh renewal token is stored");

      // A send reaches the browser again, through the new subscription only.
      const body = `after renewal ${Date.now()}`;
      const sent = await account.send({ to: { user }, title: "Back", body });
      assertEqual(sent.deliveries, 1, "one delivery: the replaced subscription is not sent to");
      const shown = await waitForNotification(browser, (n) => n.body === body);
      assertEqual(shown.title, "Back", "notification through the renewed subscription");
      const n = await account.getNotification(sent.id);
      assertEqual(n.deliveries[0].subscription_id, renewed.id, "delivered to the renewed subscription");
    },
  },
];
