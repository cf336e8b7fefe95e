// Smoke test: Web Push end to end through Herald as it is today (no SDK).
//
// Firefox subscribes on the app page with the channel's VAPID key (real click), the backend
// registers that subscription with Herald, sends a notification, Herald encrypts (aes128gcm)
// and POSTs it with VAPID to the test push service, which hands it to Firefox over the
// WebSocket; the app's worker decrypts-and-shows it, and the page reads it back.

import { subscribedUser, waitForNotification } from "../lib/flows.mjs";
import { assert, assertEqual, waitFor } from "../lib/util.mjs";

export default [
  {
    name: "a notification sent through Herald is shown by the service worker",
    async run(ctx) {
      const { account, channel, browser, subscription, registered, user } = await subscribedUser(ctx);
      ctx.log(`subscribed: ${subscription.endpoint}`);
      assert(subscription.endpoint.startsWith(`${ctx.push.origin}/wpush/`), "the endpoint is the test push service's");
      assertEqual(registered.channel_id, channel.id, "registered subscription's channel");

      const title = "Order shipped";
      const body = `It is on its way (${Date.now()})`;
      const sent = await account.send({ to: { user }, title, body });
      assertEqual(sent.deliveries, 1, "deliveries created");

      const shown = await waitForNotification(browser, (n) => n.body === body);
      assertEqual([shown.title, shown.body], [title, body], "shown notification's title and body");

      // The push service accepted Herald's request (VAPID verified) and Firefox acked delivery.
      const log = await ctx.push.log();
      const post = log.find((e) => e.type === "http.push" && subscription.endpoint.endsWith(e.channelID));
      assertEqual([post?.status, post?.encoding], [201, "aes128gcm"], "Herald's push request answered");
      await waitFor("Firefox's ack", async () =>
        (await ctx.push.log()).find((e) => e.type === "ws.ack" && e.version === post.version && e.code === 100),
      );

      // Herald recorded the delivery as delivered.
      const n = await waitFor("Herald to record the delivery", async () => {
        const got = await account.getNotification(sent.id);
        return got.counts?.delivered === 1 ? got : null;
      });
      assertEqual(n.counts.total, 1, "Herald's delivery count");
    },
  },
];
