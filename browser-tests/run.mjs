#!/usr/bin/env node
// The browser test runner. Starts the shared fixtures once — the test push service
// (push-service.mjs), the app's static origin (lib/app-server.mjs) and Herald — then runs every
// tests/*.test.mjs in name order. Each test gets its own headless Firefox on a fresh profile
// (ctx.browser(), started on first use and quit after the test) and usually its own Herald
// account, so tests do not see each other's subscriptions.
//
//   node browser-tests/run.mjs --herald-bin target/debug/herald [--filter TEXT] [--keep] [--debug]
//
// A test file exports an array (or one object) of {name, timeoutMs?, run(ctx)}; README.md
// ("Writing a test") describes ctx. The last line is "browser: N passed, N failed" (exit
// status 1 if any failed).

import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { startAppServer } from "./lib/app-server.mjs";
import { firefoxVersion, launchFirefox } from "./lib/firefox.mjs";
import { startHerald } from "./lib/herald.mjs";
import { call, freePort, log } from "./lib/util.mjs";
import { startPushService } from "./push-service.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const args = { heraldBin: null, filter: null, keep: false, debug: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--herald-bin") args.heraldBin = argv[++i];
    else if (a === "--filter") args.filter = argv[++i];
    else if (a === "--keep") args.keep = true;
    else if (a === "--debug") args.debug = true;
    else throw new Error(`unknown argument ${a}`);
  }
  args.heraldBin ??= process.env.HERALD_BIN ?? path.join(HERE, "..", "target", "debug", "herald");
  args.keep ||= process.env.HERALD_BROWSER_KEEP === "1";
  args.debug ||= process.env.HERALD_BROWSER_DEBUG === "1";
  return args;
}

/** Every test of tests/*.test.mjs, in file-name order, as {file, name, timeoutMs, run}. */
async function loadTests(filter) {
  const dir = path.join(HERE, "tests");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".test.mjs")).sort();
  const tests = [];
  for (const file of files) {
    const mod = await import(pathToFileURL(path.join(dir, file)).href);
    const list = Array.isArray(mod.default) ? mod.default : [mod.default];
    for (const t of list) {
      const full = `${file.replace(/\.test\.mjs$/, "")}: ${t.name}`;
      if (!filter || full.includes(filter)) tests.push({ file, ...t, name: full });
    }
  }
  return tests;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function indent(text, prefix = "    ") {
  return text
    .split("\n")
    .map((l) => prefix + l)
    .join("\n");
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(args.heraldBin)) throw new Error(`no Herald binary at ${args.heraldBin} (cargo build --bin herald)`);
  log(`${firefoxVersion()}, node ${process.version}, herald ${args.heraldBin}`);

  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-browser-"));
  const cleanups = [];
  // Every Firefox still running is quit first on cleanup (e.g. after Ctrl-C mid-test).
  const liveBrowsers = new Set();
  let cleaning = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await Promise.all([...liveBrowsers].map((b) => b.close()));
      for (const fn of cleanups.reverse()) {
        try {
          await fn();
        } catch (err) {
          log(`cleanup: ${err.message}`);
        }
      }
      if (args.keep) log(`kept ${workdir}`);
      else fs.rmSync(workdir, { recursive: true, force: true });
    })());
  let aborted = false;
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.on(sig, () => {
      aborted = true;
      log(`${sig}: cleaning up`);
      cleanup().finally(() => process.exit(130));
    });
  }

  let passed = 0;
  let failed = 0;
  try {
    const tests = await loadTests(args.filter);
    if (tests.length === 0) throw new Error(`no tests match ${JSON.stringify(args.filter)}`);

    // --- shared fixtures ---
    const push = await startPushService({ quiet: !args.debug });
    cleanups.push(() => push.close());
    log(`push service on ${push.origin} (WebSocket ${push.wsUrl})`);
    const app = await startAppServer();
    cleanups.push(() => app.close());
    log(`app origin ${app.origin}`);
    // freePort() can race with another process taking the port: try a few.
    let herald;
    for (let attempt = 1; !herald; attempt++) {
      try {
        herald = await startHerald({
          bin: args.heraldBin,
          dir: workdir,
          port: await freePort(),
          adminToken: `adm_${crypto.randomBytes(16).toString("hex")}`,
        });
      } catch (err) {
        if (attempt >= 3) throw err;
        log(`herald did not start (${err.message}); retrying`);
      }
    }
    cleanups.push(() => herald.close());
    app.heraldUrl = herald.url;

    const pushClient = {
      origin: push.origin,
      wsUrl: push.wsUrl,
      control: (action, body = {}) => call("POST", `${push.origin}/control/${action}`, { body }),
      log: () => call("GET", `${push.origin}/control/log`),
      state: () => call("GET", `${push.origin}/control/state`),
    };

    // --- tests ---
    let n = 0;
    for (const test of tests) {
      if (aborted) break;
      n++;
      const browsers = [];
      const ctx = {
        herald,
        push: pushClient,
        app,
        workdir,
        debug: args.debug,
        log: (...parts) => log(`  ${parts.join(" ")}`),
        /** A new headless Firefox on a fresh profile; quit when the test ends. */
        browser: async (label = "firefox") => {
          const b = await launchFirefox({
            dir: workdir,
            name: `t${n}-${label}${browsers.length ? `-${browsers.length}` : ""}`,
            pushServerUrl: push.wsUrl,
            debug: args.debug,
            track: (b) => {
              browsers.push(b);
              liveBrowsers.add(b);
            },
          });
          return b;
        },
        /** A fresh Herald account (name derived from the test); `extra`, e.g. {dev_mode: true}. */
        account: (extra) => herald.createAccount(`browser-test-${n}`, extra),
      };
      const started = Date.now();
      const pushSeq = push.log.length ? push.log[push.log.length - 1].seq : 0;
      const appSeq = app.lastSeq;
      log(`▶ ${test.name}`);
      try {
        await withTimeout(test.run(ctx), test.timeoutMs ?? 90000, test.name);
        passed++;
        log(`✔ ${test.name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      } catch (err) {
        failed++;
        log(`✘ ${test.name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        console.log(indent(String(err?.stack ?? err)));
        console.log("  push service log (this test):");
        console.log(indent(push.log.filter((e) => e.seq > pushSeq).map((e) => JSON.stringify(e)).join("\n") || "(empty)"));
        console.log("  app/worker events (this test):");
        console.log(indent(app.events.filter((e) => e.seq > appSeq).map((e) => JSON.stringify(e)).join("\n") || "(empty)"));
        for (const b of browsers) console.log(`  ${path.basename(b.logFile)} (tail):\n${indent(b.logTail(30))}`);
        console.log(`  herald.log (tail):\n${indent(herald.logTail(30))}`);
      } finally {
        for (const b of browsers) {
          await b.close();
          liveBrowsers.delete(b);
        }
      }
    }
  } catch (err) {
    failed++;
    console.log(`harness error: ${err?.stack ?? err}`);
  } finally {
    await cleanup();
  }
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.log(`harness error: ${err?.stack ?? err}`);
  console.log("browser: 0 passed, 1 failed");
  process.exitCode = 1;
});
