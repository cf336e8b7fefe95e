// The hosted pairing page (GET /qrcode/{code}) on Herald's own origin: it loads /sdk/herald.js and
// redeems the code with the SDK in pairing mode when the button is clicked (a real click).
// Herald's worker (/sw.js, the SDK's herald-sw.js) is registered at /push/<channel>/ and shows
// what Herald sends to the code's user, reporting receipts to Herald (same origin).

import { waitForHeraldNotification } from "../lib/flows.mjs";
import { assert, assertEqual, waitFor } from "../lib/util.mjs";

export default [
  {
    name: "the pairing page subscribes the browser for the code's user on a click",
    async run(ctx) {
      const user = "carol";
      const account = await ctx.account();
      const channel = await account.createWebPushChannel();
      const pairing = await account.createPairingCode(channel.id, user);
      assertEqual(pairing.deep_link, `${ctx.herald.url}/qrcode/${pairing.code}`, "the deep link is the hosted page");

      const browser = await ctx.browser();
      await browser.m.navigate(pairing.deep_link);
      const loaded = await browser.m.execute(
        "return {sdk: typeof window.Herald, user: document.querySelector('dd:nth-of-type(3)').textContent, disabled: document.getElementById('subscribe').disabled}",
      );
      assertEqual(loaded, { sdk: "object", user, disabled: false }, "the page loaded the SDK and shows the user");

      await browser.m.click("#subscribe");
      const status = await waitFor("the page to report the outcome", async () => {
        const s = await browser.m.execute("const e = document.getElementById('status'); return {text: e.textContent, cls: e.className}");
        return s.cls === "ok" || s.cls === "error" ? s : null;
      });
      assertEqual(status, { text: "Subscribed. You can close this page.", cls: "ok" }, "the page's status");

      const scope = `/push/${encodeURIComponent(channel.id)}/`;
      const registration = await browser.m.execute(
        "const r = await navigator.serviceWorker.getRegistration(arguments[0]); const s = r && await r.pushManager.getSubscription();" +
          "return r && {scope: r.scope, script: r.active && r.active.scriptURL, endpoint: s && s.endpoint}",
        [scope],
      );
      assertEqual(
        [registration?.scope, registration?.script],
        [`${ctx.herald.url}${scope}`, `${ctx.herald.url}/sw.js`],
        "Herald's worker at the channel's scope",
      );
      const subs = await account.userSubscriptions(user);
      assertEqual(subs.length, 1, "one subscription for the code's user");
      assertEqual([subs[0].status, subs[0].channel_id, subs[0].identifier], ["active", channel.id, registration.endpoint], "active, on the code's channel, for this browser");

      // The code is spent.
      const again = await account.request("POST", `/v1/pair/${pairing.code}`, {
        token: null,
        body: { settings: { endpoint: registration.endpoint, keys: { p256dh: "x", auth: "y" } } },
      });
      assertEqual(again.status, 410, "a second redemption");

      // A send is shown by Herald's worker, which reports it displayed.
      const body = `paired ${Date.now()}`;
      const sent = await account.send({ to: { user }, title: "Hello Carol", body, web_push: { requireInteraction: true } });
      const shown = await waitFor("the notification on the channel's registration", async () => {
        const list = await browser.m.execute(
          "const r = await navigator.serviceWorker.getRegistration(arguments[0]);" +
            "return (await r.getNotifications()).map((n) => ({title: n.title, body: n.body}))",
          [scope],
        );
        return list.find((n) => n.body === body);
      });
      assertEqual(shown.title, "Hello Carol", "the notification's title");
      const n = await waitForHeraldNotification(account, sent.id, "counts.displayed == 1", (x) => x.counts?.displayed === 1);
      assertEqual(n.deliveries[0].subscription_id, subs[0].id, "delivered to the paired subscription");
    },
  },
];
