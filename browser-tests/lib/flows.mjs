// Steps tests share: opening the app page, real clicks, subscribing, reading notifications,
// and acting on shown notifications from Firefox's chrome context.

import { assert, waitFor } from "./util.mjs";

/** Navigates to the app page and waits until its service worker is active. */
export async function openApp(browser, app, pathname = "/") {
  await browser.m.navigate(`${app.origin}${pathname}`);
  await browser.m.execute("return window.harness.ready");
}

/**
 * Arms `action` (a name from app.js `actions`, or async function source) with `args`, clicks #act
 * with a real WebDriver click and returns the action's value. Throws if the action failed or the
 * click carried no user activation.
 */
export async function clickAction(browser, action, args = {}) {
  await browser.m.execute("window.harness.arm(arguments[0], arguments[1])", [action, args]);
  await browser.m.click("#act");
  const result = await browser.m.execute("return window.harness.clickResult()");
  assert(result.userActivation === true, `the click on #act carried user activation (got ${result.userActivation})`);
  if (!result.ok) throw new Error(`click action ${JSON.stringify(action).slice(0, 60)} failed in the page: ${result.error}`);
  return result.value;
}

/** Subscribes the page to Push with `applicationServerKey` on a real click: the subscription JSON. */
export async function subscribe(browser, applicationServerKey) {
  const { permission, subscription } = await clickAction(browser, "subscribe", { applicationServerKey });
  assert(permission === "granted", `notification permission granted (got ${permission})`);
  assert(subscription?.endpoint && subscription.keys?.p256dh && subscription.keys?.auth, "subscription has endpoint and keys");
  return subscription;
}

/** The notifications the app's worker registration currently shows: [{title, body, tag, data}]. */
export function shownNotifications(browser) {
  return browser.m.execute("return window.harness.notifications()");
}

/** Waits until a shown notification matches `pred` and returns it. */
export function waitForNotification(browser, pred, timeoutMs = 20000) {
  return waitFor("a shown notification", async () => (await shownNotifications(browser)).find(pred), { timeoutMs });
}

/**
 * An account with a web_push channel, a Firefox subscribed to it on the app page and that
 * subscription registered with Herald for `user`. Returns everything a test needs next.
 */
export async function subscribedUser(ctx, { user = "alice", label = "firefox" } = {}) {
  const account = await ctx.account();
  const channel = await account.createWebPushChannel();
  assert(typeof channel.vapid_public_key === "string", "the web_push channel has vapid_public_key");
  const browser = await ctx.browser(label);
  await openApp(browser, ctx.app);
  const subscription = await subscribe(browser, channel.vapid_public_key);
  const registered = await account.registerSubscription(user, channel.id, subscription);
  return { account, channel, browser, subscription, registered, user };
}

// ---- Notifications, from the chrome (privileged) context -------------------------------------
//
// Firefox 153 shows a service worker's notification through nsIAlertsService. With
// alerts.useSystemBackend = false (no notification daemon here) the alert is a XUL window,
// chrome://global/content/alerts/alert.xhtml (window type "alert:alert"), which exists in headless
// mode too. Its script keeps the alert's listener in `window.arguments[10]` (an nsIObserver) and
// its cookie in `window.gAlertCookie`. Acting on that window is acting as the user:
//
//   click the alert          → listener "alertclickcallback" → `notificationclick` in the worker;
//                              the alert then closes → "alertfinished" → `notificationclose`
//   click an action button   → the XUL alert draws no buttons; calling the listener with an
//                              nsIAlertAction subject is what a system backend does on a button
//                              press → `notificationclick` with event.action (the alert stays)
//   the alert's close button → "alertfinished" → `notificationclose`
//
// An alert not interacted with closes itself after 20 s (its CSS animation) and that also fires
// `notificationclose` and removes it from getNotifications(): assert on shown notifications
// promptly (or show them with requireInteraction).

/** Finds the alert window whose title (and body, if given) match, and runs `op` on it. */
const ALERT_OP = `
  const [op, match, action] = arguments;
  const wins = [...Services.wm.getEnumerator("alert:alert")].filter((w) => !w.closed && w.gIsActive);
  const describe = (w) => ({
    title: w.document.getElementById("alertTitleLabel").value,
    body: w.document.getElementById("alertTextLabel").textContent,
  });
  if (op === "list") return wins.map(describe);
  const win = wins.find((w) => {
    const d = describe(w);
    return d.title === match.title && (match.body === undefined || d.body === match.body);
  });
  if (!win) return { found: false, open: wins.map(describe) };
  const listener = win.arguments[10];
  switch (op) {
    case "click":
      // The user clicking the alert: the window's own click handler (onAlertClick) runs.
      win.document.getElementById("alertTitleLabel").click();
      break;
    case "action": {
      const subject = {
        action,
        title: action,
        iconURL: "",
        windowsSystemActivationType: false,
        opaqueRelaunchData: "",
        QueryInterface: ChromeUtils.generateQI(["nsIAlertAction"]),
      };
      listener.observe(subject, "alertclickcallback", win.gAlertCookie);
      break;
    }
    case "close":
      // The alert's close button ("command" → onAlertClose → window closes → alertfinished).
      win.document.getElementById("alert-close").doCommand();
      break;
    default:
      throw new Error("unknown alert op " + op);
  }
  return { found: true };
`;

/** The open notification alerts: [{title, body}]. */
export function alertWindows(browser) {
  return browser.m.chrome(ALERT_OP, ["list", null, null]);
}

async function alertOp(browser, op, match, action = null) {
  return waitFor(`an alert titled ${JSON.stringify(match.title)} (${op})`, async () => {
    const r = await browser.m.chrome(ALERT_OP, [op, match, action]);
    if (!r.found) throw new Error(`open alerts: ${JSON.stringify(r.open)}`);
    return true;
  });
}

/** Clicks the shown notification matching {title, body?} as a user would. */
export function clickNotification(browser, match) {
  return alertOp(browser, "click", match);
}

/** Presses the action button `action` of the notification matching {title, body?}. */
export function clickNotificationAction(browser, match, action) {
  return alertOp(browser, "action", match, action);
}

/** Dismisses the notification matching {title, body?} with its close button. */
export function closeNotification(browser, match) {
  return alertOp(browser, "close", match);
}

// ---- Herald's SDK on the app's origin (app/sdk.html) ------------------------------------------

/** Opens app/sdk.html, which loads Herald's SDK from Herald's origin, and waits until it did. */
export async function openSdkApp(browser, app) {
  await browser.m.navigate(`${app.origin}/sdk.html`);
  await browser.m.execute("return window.harness.ready");
}

// Runs inside the click: Herald.init(init) then subscribe(); the outcome, never a rejection.
const SDK_SUBSCRIBE = `async ({ init, tokenFunction, subscribe }) => {
  const options = Object.assign({}, init);
  if (tokenFunction) {
    const token = options.userToken;
    options.userToken = async () => token; // as an app's fetch("/herald-token") would
  }
  window.heraldClient = Herald.init(options);
  try {
    return { ok: true, record: await window.heraldClient.subscribe(subscribe || {}) };
  } catch (e) {
    return {
      ok: false,
      error: {
        name: e && e.name, code: e && e.code, status: (e && e.status) || null, message: String(e && e.message),
        isHeraldError: e instanceof Herald.HeraldError,
      },
    };
  }
}`;

/**
 * `Herald.init(init)` and `subscribe(subscribe)` inside a real click on the SDK page:
 * {ok: true, record} or {ok: false, error: {name, code, status, message, isHeraldError}}.
 * `tokenFunction`: pass `init.userToken` as an async function rather than a string.
 */
export function sdkSubscribe(browser, init, { tokenFunction = false, subscribe } = {}) {
  return clickAction(browser, SDK_SUBSCRIBE, { init, tokenFunction, subscribe });
}

/** Polls GET /v1/notifications/{id} until `pred(notification)` holds; returns it. */
export function waitForHeraldNotification(account, id, what, pred, timeoutMs = 15000) {
  return waitFor(what, async () => {
    const n = await account.getNotification(id);
    return pred(n) ? n : null;
  }, { timeoutMs });
}
