// The push service loses the browser's registrations (it answers a new UAID on the next hello):
// Firefox drops its subscription and fires `pushsubscriptionchange` in the worker, with
// oldSubscription set and newSubscription null (Firefox 153). The worker resubscribes with the
// old applicationServerKey. Herald learns the old endpoint is gone (410) on the next send and
// deactivates it; once the new subscription is registered (by the SDK later; by the test here)
// notifications arrive again.

import { shownNotifications, subscribedUser, waitForNotification } from "../lib/flows.mjs";
import { assert, assertEqual, waitFor } from "../lib/util.mjs";

export default [
  {
    name: "a push service reset fires pushsubscriptionchange and the worker resubscribes",
    async run(ctx) {
      const { account, channel, browser, subscription, registered, user } = await subscribedUser(ctx);
      const after = ctx.app.lastSeq;

      await ctx.push.control("invalidate");
      const change = await ctx.app.waitForEvent("pushsubscriptionchange", { after });
      ctx.log(`pushsubscriptionchange: ${JSON.stringify(change)}`);
      assertEqual(change.oldSubscription?.endpoint, subscription.endpoint, "event.oldSubscription is the dropped subscription");
      assertEqual(change.oldSubscription?.keys, subscription.keys, "event.oldSubscription keeps its keys");
      assertEqual(change.oldApplicationServerKey, channel.vapid_public_key, "event.oldSubscription.options.applicationServerKey");
      assertEqual(change.newSubscription, null, "event.newSubscription (Firefox leaves it null)");
      assertEqual(change.currentSubscription, null, "pushManager.getSubscription() inside the event");

      const renewed = await ctx.app.waitForEvent("resubscribed", { after });
      assert(renewed.subscription, `the worker resubscribed (error: ${renewed.error})`);
      assert(renewed.subscription.endpoint !== subscription.endpoint, "the new subscription has a new endpoint");
      assertEqual(
        await browser.m.execute("return window.harness.subscription()"),
        renewed.subscription,
        "the page sees the worker's new subscription",
      );

      // Herald still has the old endpoint: the push service answers 410 and Herald deactivates it.
      const lost = await account.send({ to: { user }, title: "Lost", body: "to the old endpoint" });
      const old = await waitFor("Herald to deactivate the old subscription", async () => {
        const s = await account.getSubscription(registered.id);
        return s.status === "inactive" ? s : null;
      });
      ctx.log(`old subscription: status ${old.status}, inactive_reason ${old.inactive_reason}; notification ${lost.id}`);

      // Registering the renewed subscription makes delivery work again.
      await account.registerSubscription(user, channel.id, renewed.subscription);
      const body = `after renewal ${Date.now()}`;
      await account.send({ to: { user }, title: "Back", body });
      const shown = await waitForNotification(browser, (n) => n.body === body);
      assertEqual(shown.title, "Back", "notification through the renewed subscription");
      assert(!(await shownNotifications(browser)).some((n) => n.title === "Lost"), "nothing arrived through the old endpoint");
    },
  },
];
