// The served forms: herald.js (classic script) and herald.mjs (module), both plain concatenations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";
import {
  buildClassic, buildModule, coreSource, workerSource, loadClassic, loadModule,
  CLASSIC_PREFIX, CLASSIC_SUFFIX, MODULE_SUFFIX,
} from "./load.mjs";

test("herald-core.js has no import/export and declares Herald and HeraldError at top level", () => {
  const src = coreSource();
  assert.doesNotMatch(src, /^\s*(import|export)\b/m);
  assert.match(src, /^class HeraldError extends Error\b/m);
  assert.match(src, /^const Herald = /m);
});

test("the classic build is a script that defines window.Herald (with HeraldError)", () => {
  const src = buildClassic();
  assert.ok(src.startsWith("(function(){\n") && src.endsWith("\nwindow.Herald = Herald;\n})();\n"));
  new vm.Script(src); // parses as a classic script
  const window = {};
  vm.runInNewContext(src, { window });
  assert.equal(typeof window.Herald.init, "function");
  assert.equal(typeof window.Herald.isSupported, "function");
  assert.equal(window.Herald.isSupported(), false); // no browser globals here, and no throw
  const err = new window.Herald.HeraldError("network", "x", { status: 0 });
  assert.equal(err.code, "network");
  assert.equal(err.name, "HeraldError");
  assert.deepEqual(Object.keys(window), ["Herald"], "nothing else leaks onto window");
});

test("the module build exports Herald as default and named, and HeraldError", async () => {
  assert.ok(buildModule().endsWith("\nexport default Herald;\nexport { Herald, HeraldError };\n"));
  const mod = await loadModule();
  assert.equal(mod.default, mod.Herald);
  assert.equal(mod.Herald.HeraldError, mod.HeraldError);
  const e = new mod.HeraldError("not_subscribed", "m");
  assert.ok(e instanceof Error);
  assert.equal(e.code, "not_subscribed");
});

test("both builds expose the same API", async () => {
  const mod = await loadModule();
  const classic = loadClassic({});
  assert.deepEqual(Object.keys(classic).sort(), Object.keys(mod.Herald).sort());
  assert.deepEqual(Object.keys(classic).sort(), ["HeraldError", "init", "isSupported", "version"]);
});

test("the worker is a classic script without import/export (importScripts-able)", () => {
  const src = workerSource();
  assert.doesNotMatch(src, /^\s*(import|export)\b/m);
  new vm.Script(src);
});

test("the worker finds its own URL in Chrome, Firefox and Safari stack traces", () => {
  const literal = /const m = (\/.+\/)\.exec\(new Error\(\)\.stack/.exec(workerSource())[1];
  const re = vm.runInNewContext(literal);
  const url = "https://push.example.com:8443/sdk/herald-sw.js";
  const stacks = {
    chrome: `Error\n    at ${url}:30:53\n    at ${url}:35:5`,
    firefox: `@${url}:30:53\n@${url}:35:5\n`,
    safari: `@${url}:30:53\nglobal code@${url}:35:5`,
  };
  for (const [browser, stack] of Object.entries(stacks)) {
    assert.equal(re.exec(stack)?.[1], url, browser);
  }
});

test("sdk/README.md documents the same concatenation the tests build", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const lit = (s) => JSON.stringify(s);
  for (const piece of [CLASSIC_PREFIX, CLASSIC_SUFFIX, MODULE_SUFFIX]) {
    assert.ok(readme.includes(lit(piece)), `README mentions ${lit(piece)}`);
  }
});
