// Builds the two served forms of the SDK exactly as the server does (plain concatenation), and
// loads the SDK and the service worker into Node with stubbed browser globals.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const SDK_DIR = new URL("../", import.meta.url);

export const CLASSIC_PREFIX = "(function(){\n";
export const CLASSIC_SUFFIX = "\nwindow.Herald = Herald;\n})();\n";
export const MODULE_SUFFIX = "\nexport default Herald;\nexport { Herald, HeraldError };\n";

export function coreSource() {
  return readFileSync(new URL("herald-core.js", SDK_DIR), "utf8");
}

export function workerSource() {
  return readFileSync(new URL("herald-sw.js", SDK_DIR), "utf8");
}

/** `GET /sdk/herald.js` */
export function buildClassic() {
  return CLASSIC_PREFIX + coreSource() + CLASSIC_SUFFIX;
}

/** `GET /sdk/herald.mjs` */
export function buildModule() {
  return coreSource() + MODULE_SUFFIX;
}

/** The browser globals the SDK reads; anything not given is `undefined` (as in an old browser). */
const PAGE_GLOBALS = ["window", "navigator", "Notification", "PushManager", "fetch", "indexedDB", "console"];

/**
 * Runs the classic build with the given globals and returns `window.Herald`. Each call is a
 * fresh copy of the SDK (its own module state), like a fresh page.
 */
export function loadClassic(env = {}) {
  const window = env.window || {};
  const wrapped = `(function(${PAGE_GLOBALS.join(", ")}) {\n${buildClassic()}\n})`;
  const fn = vm.runInThisContext(wrapped, { filename: "https://push.example.com/sdk/herald.js" });
  fn(window, env.navigator, env.Notification, env.PushManager, env.fetch, env.indexedDB, env.console || console);
  return window.Herald;
}

/** Imports the module build (it reads the real Node globals, so only use it for shape checks). */
export function loadModule() {
  return import("data:text/javascript;base64," + Buffer.from(buildModule()).toString("base64"));
}

/**
 * Runs herald-sw.js in a fake worker global `self`, as if its script URL were `scriptUrl`
 * (the worker derives "standalone or imported" and Herald's URL from its own URL).
 */
export function loadWorker(self, scriptUrl = String(self.location.href)) {
  const fn = vm.runInThisContext(`(function(self) {\n${workerSource()}\n})`, { filename: scriptUrl });
  fn(self);
  return self;
}
