// An account that lists its allowed origins (PATCH /v1/account {"allowed_origins"}) refuses the
// SDK on any other origin. Herald answers the actual request 403 `forbidden` (details.reason
// "origin_not_allowed") without Access-Control-Allow-Origin, so the browser hides that answer
// from the page: fetch() fails, and the SDK rejects with HeraldError code "network" (its message
// names CORS as a cause). Listing the app's origin makes the same subscribe() work.

import { openSdkApp, sdkSubscribe } from "../lib/flows.mjs";
import { assert, assertEqual, request } from "../lib/util.mjs";

export default [
  {
    name: "allowed_origins without the app's origin: subscribe() rejects, the browser sees a network error",
    async run(ctx) {
      const user = "dora";
      const account = await ctx.account({ dev_mode: true });
      await account.createWebPushChannel();
      const elsewhere = "http://localhost:1";
      const patched = await account.patchAccount({ allowed_origins: [elsewhere] });
      ctx.log(`PATCH /v1/account → ${JSON.stringify(patched)}`);

      // What Herald answers (outside a browser, which would hide it).
      const headers = { origin: ctx.app.origin, "x-herald-user-id": user };
      const raw = await request("GET", `${ctx.herald.url}/v1/me/vapid`, { token: account.pk, headers });
      assertEqual([raw.status, raw.body?.error?.code, raw.body?.error?.details?.reason], [403, "forbidden", "origin_not_allowed"], "Herald's answer to the app's origin");
      assertEqual(raw.headers.get("access-control-allow-origin"), null, "no Access-Control-Allow-Origin on the refusal");
      const preflight = await request("OPTIONS", `${ctx.herald.url}/v1/me/vapid`, {
        headers: { origin: ctx.app.origin, "access-control-request-method": "GET", "access-control-request-headers": "authorization,x-herald-user-id" },
      });
      assertEqual(preflight.status, 204, "the preflight is answered for any origin");

      const browser = await ctx.browser();
      await openSdkApp(browser, ctx.app);
      const init = { url: ctx.herald.url, publicKey: account.pk, userId: user, serviceWorker: "/herald-sw.js" };
      const refused = await sdkSubscribe(browser, init);
      ctx.log(`subscribe(): ${JSON.stringify(refused)}`);
      assert(!refused.ok, "subscribe() rejected");
      assertEqual([refused.error.name, refused.error.isHeraldError, refused.error.code, refused.error.status], ["HeraldError", true, "network", null], "the rejection");
      assert(/CORS/.test(refused.error.message) && refused.error.message.includes(ctx.herald.url), `the message names Herald's URL and CORS: ${refused.error.message}`);
      assertEqual((await account.userSubscriptions(user)).length, 0, "nothing was registered");

      // The same call from an allowed origin works.
      await account.patchAccount({ allowed_origins: [elsewhere, ctx.app.origin] });
      const allowed = await sdkSubscribe(browser, init);
      assert(allowed.ok, `subscribe() resolved once the origin is allowed (${JSON.stringify(allowed.error)})`);
      assertEqual([allowed.record.user, allowed.record.status], [user, "active"], "the subscription");
    },
  },
];
