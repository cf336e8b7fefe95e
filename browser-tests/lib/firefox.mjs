// Launching headless Firefox ESR on a fresh profile, driven over Marionette.

import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

import { Marionette } from "./marionette.mjs";
import { log, waitFor } from "./util.mjs";

/** The Firefox binary: $HERALD_FIREFOX, else firefox-esr or firefox on PATH. */
export function firefoxBinary() {
  if (process.env.HERALD_FIREFOX) return process.env.HERALD_FIREFOX;
  for (const name of ["firefox-esr", "firefox"]) {
    try {
      return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim();
    } catch {
      // not on PATH
    }
  }
  throw new Error("no Firefox found (install the firefox-esr package or set HERALD_FIREFOX)");
}

export function firefoxVersion(binary = firefoxBinary()) {
  return execFileSync(binary, ["--version"], { encoding: "utf8" }).trim();
}

/**
 * The preferences every test profile gets (written to user.js). Each one is here for a reason;
 * README.md explains the ones that matter.
 */
export function profilePrefs({ pushServerUrl, debug = false }) {
  return {
    // --- Web Push against the test push service -------------------------------------------
    // The WebSocket URL of the push service (Mozilla's protocol, see push-service.mjs).
    "dom.push.serverURL": pushServerUrl,
    // ws:// (not wss://) is only accepted with this testing pref.
    "dom.push.testing.allowInsecureServerURL": true,
    // MUST be set explicitly: Marionette's "recommended preferences" turn it OFF (so that
    // automated Firefox never talks to Mozilla's push service) unless the profile has a user
    // value for it.
    "dom.push.connection.enabled": true,
    "dom.push.enabled": true,
    // Reconnect quickly after the push service closes the socket (default 5000 ms, doubling).
    "dom.push.retryBaseInterval": 500,
    // A register/unregister without an answer in this long fails and the socket reconnects.
    "dom.push.requestTimeout": 10000,
    // PushService logs (console.*) go to Firefox's stdout/stderr: "Debug" when debugging.
    "dom.push.loglevel": debug ? "Debug" : "Error",

    // --- Notifications ---------------------------------------------------------------------
    // 1 = allow: pages get Notification.permission "granted" without a prompt. (Tests also
    // grant it per origin through Marionette's Permissions:SetPermission.)
    "permissions.default.desktop-notification": 1,
    "dom.webnotifications.enabled": true,
    "dom.webnotifications.serviceworker.enabled": true,
    // Without a desktop session bus there is no system notification daemon; use Firefox's
    // own (XUL) alert windows, which also work headless.
    "alerts.useSystemBackend": false,

    // --- Service workers -------------------------------------------------------------------
    "dom.serviceWorkers.enabled": true,
    // Keep idle workers alive longer than the test's pauses (default 30 s).
    "dom.serviceWorkers.idle_timeout": 60000,

    // --- Quiet, deterministic start --------------------------------------------------------
    // (Marionette applies many more "recommended preferences" itself.)
    "browser.shell.checkDefaultBrowser": false,
    "datareporting.policy.dataSubmissionEnabled": false,
    "datareporting.healthreport.uploadEnabled": false,
    "toolkit.telemetry.enabled": false,
    "browser.aboutwelcome.enabled": false,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "network.proxy.type": 0,
    // The Marionette server port: 0 = any free port, written to <profile>/MarionetteActivePort.
    "marionette.port": 0,
  };
}

function userJs(prefs) {
  return (
    "// Written by browser-tests/lib/firefox.mjs for one test run.\n" +
    Object.entries(prefs)
      .map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});`)
      .join("\n") +
    "\n"
  );
}

/**
 * Starts headless Firefox on a new profile under `dir` and returns a Browser with a Marionette
 * session. `name` labels the log file (<dir>/<name>.log holds Firefox's stdout and stderr);
 * `track(browser)` is called as soon as the process exists, so a cleanup can always reach it.
 */
export async function launchFirefox({ dir, name = "firefox", pushServerUrl, extraPrefs = {}, debug = false, track }) {
  const profile = path.join(dir, `${name}-profile`);
  fs.mkdirSync(profile, { recursive: true });
  fs.writeFileSync(path.join(profile, "user.js"), userJs({ ...profilePrefs({ pushServerUrl, debug }), ...extraPrefs }));
  const logFile = path.join(dir, `${name}.log`);
  const out = fs.openSync(logFile, "a");
  const binary = firefoxBinary();
  // -remote-allow-system-access: since Firefox ~138, Marionette refuses the chrome context
  // (privileged scripts, needed to click notifications) without it.
  const args = ["--headless", "--no-remote", "--marionette", "-remote-allow-system-access", "--profile", profile];
  const child = spawn(binary, [...args, "about:blank"], {
    stdio: ["ignore", out, out],
    env: {
      ...process.env,
      MOZ_HEADLESS: "1",
      MOZ_CRASHREPORTER_DISABLE: "1",
      // No session bus: keeps GTK/GIO from trying to start one.
      DBUS_SESSION_BUS_ADDRESS: "disabled:",
    },
    detached: true, // its own process group, so cleanup can kill content processes too
  });
  fs.closeSync(out);
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  let exitInfo = null;
  exited.then((info) => (exitInfo = info));

  const browser = new Browser({ child, exited, profile, logFile });
  // Hand the process to the caller's cleanup before anything can fail or be interrupted.
  track?.(browser);
  try {
    const portFile = path.join(profile, "MarionetteActivePort");
    const port = await waitFor(
      "Firefox's Marionette port",
      () => {
        if (exitInfo) throw new Error(`Firefox exited early (${JSON.stringify(exitInfo)}); see ${logFile}`);
        return fs.existsSync(portFile) && Number(fs.readFileSync(portFile, "utf8").trim());
      },
      { timeoutMs: 60000 },
    );
    browser.marionette = await Marionette.connect(port);
    await browser.marionette.newSession({});
    await browser.marionette.setTimeouts({ script: 30000, pageLoad: 30000, implicit: 0 });
    log(`${name}: Firefox pid ${child.pid}, Marionette port ${port}`);
  } catch (err) {
    await browser.close();
    throw err;
  }
  return browser;
}

/** One running Firefox: its Marionette client (`m`) and process. */
export class Browser {
  constructor({ child, exited, profile, logFile }) {
    this.child = child;
    this.exited = exited;
    this.profile = profile;
    this.logFile = logFile;
    this.marionette = null;
  }

  get m() {
    return this.marionette;
  }

  /** The last lines Firefox printed (for failure reports). */
  logTail(lines = 40) {
    try {
      return fs.readFileSync(this.logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  /** Quits through Marionette, then kills the process group if it lingers. */
  async close() {
    if (this.marionette) await Promise.race([this.marionette.quit(), new Promise((r) => setTimeout(r, 5000))]);
    const gone = await Promise.race([this.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
    if (!gone) {
      try {
        process.kill(-this.child.pid, "SIGKILL");
      } catch {
        // already gone
      }
      await this.exited;
    }
  }
}
