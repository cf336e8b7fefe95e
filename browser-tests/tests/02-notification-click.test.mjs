// Acting on shown notifications as a user would: click (→ notificationclick, and the worker
// opens the notification's url), an action button (→ notificationclick with event.action),
// the close button (→ notificationclose). The notifications come through Herald and the push
// service; the clicks are done on Firefox's alert windows from the chrome context (see
// lib/flows.mjs and README.md).

import {
  clickNotification,
  clickNotificationAction,
  closeNotification,
  shownNotifications,
  subscribedUser,
  waitForNotification,
} from "../lib/flows.mjs";
import { assert, assertEqual, waitFor } from "../lib/util.mjs";

export default [
  {
    name: "click, action button and close reach the service worker",
    async run(ctx) {
      const { account, browser, user } = await subscribedUser(ctx);
      const nonce = Date.now();

      // 1. A click: notificationclick, then the worker opens the url in a new tab.
      const url = `${ctx.app.origin}/?clicked=${nonce}`;
      const first = { title: "Click me", body: `first ${nonce}` };
      let after = ctx.app.lastSeq;
      await account.send({ to: { user }, ...first, url });
      await waitForNotification(browser, (n) => n.body === first.body);
      await clickNotification(browser, first);
      const click = await ctx.app.waitForEvent("notificationclick", { after, pred: (e) => e.notification.body === first.body });
      assertEqual(click.action, "", "a click on the notification itself has no action");
      assertEqual(click.notification.data?.payload?.url, url, "the payload's url reached the worker");
      const opened = await ctx.app.waitForEvent("openWindow", { after });
      assertEqual(opened.client?.url, url, "clients.openWindow(url) opened the page");
      const tabs = await browser.m.chrome(
        "return [...Services.wm.getEnumerator('navigator:browser')].flatMap((w) => w.gBrowser.tabs.map((t) => t.linkedBrowser.currentURI.spec))",
      );
      assert(tabs.includes(url), `a tab shows ${url} (tabs: ${JSON.stringify(tabs)})`);

      // 2. An action button: notificationclick with event.action.
      const second = { title: "Choose", body: `second ${nonce}` };
      after = ctx.app.lastSeq;
      await account.send({ to: { user }, ...second, actions: [{ action: "archive", title: "Archive" }] });
      await waitForNotification(browser, (n) => n.body === second.body);
      await clickNotificationAction(browser, second, "archive");
      const action = await ctx.app.waitForEvent("notificationclick", { after, pred: (e) => e.notification.body === second.body });
      assertEqual(action.action, "archive", "the action button's action");

      // 3. The close button: notificationclose, and the notification is gone.
      const third = { title: "Dismiss me", body: `third ${nonce}` };
      after = ctx.app.lastSeq;
      await account.send({ to: { user }, ...third });
      await waitForNotification(browser, (n) => n.body === third.body);
      await closeNotification(browser, third);
      await ctx.app.waitForEvent("notificationclose", { after, pred: (e) => e.notification.body === third.body });
      await waitFor("the dismissed notification to leave getNotifications()", async () =>
        !(await shownNotifications(browser)).some((n) => n.body === third.body),
      );
      assertEqual(
        ctx.app.eventsOf("notificationclick", { after, pred: (e) => e.notification.body === third.body }).length,
        0,
        "closing is not clicking",
      );
    },
  },
];
