// Running Herald for the browser tests, and a thin client for its HTTP API.

import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

import { call, log, request, waitFor } from "./util.mjs";

/**
 * Starts `herald serve` on 127.0.0.1:<port> with a fresh SQLite file in `dir`. Outbound requests
 * to 127.0.0.1 are allowed (HERALD_OUTBOUND_ALLOW), so `http://127.0.0.1:<push>/wpush/…`
 * endpoints are accepted and delivered to. Output goes to <dir>/herald.log.
 */
export async function startHerald({ bin, dir, port, adminToken, env = {} }) {
  const logFile = path.join(dir, "herald.log");
  const out = fs.openSync(logFile, "a");
  const child = spawn(bin, ["serve"], {
    stdio: ["ignore", out, out],
    env: {
      ...process.env,
      HERALD_DATABASE_URL: path.join(dir, "herald.db"),
      HERALD_LISTEN: `127.0.0.1:${port}`,
      HERALD_ADMIN_TOKEN: adminToken,
      HERALD_OUTBOUND_ALLOW: "127.0.0.1/32",
      // Deliver promptly; the default safety poll is 1 s (sends also wake the engine at once).
      HERALD_DELIVERY_POLL_MS: "200",
      RUST_LOG: process.env.RUST_LOG ?? "info",
      NO_COLOR: "1", // plain text in herald.log
      ...env,
    },
  });
  fs.closeSync(out);
  let exitInfo = null;
  const exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const herald = new Herald({ url, adminToken, child, exited, logFile });
  try {
    await waitFor(
      "Herald /readyz",
      async () => {
        if (exitInfo) throw new Error(`herald exited early (${JSON.stringify(exitInfo)}); see ${logFile}`);
        return (await request("GET", `${url}/readyz`)).status === 200;
      },
      { timeoutMs: 30000 },
    );
  } catch (err) {
    await herald.close();
    throw err;
  }
  log(`herald: pid ${child.pid} on ${url}`);
  return herald;
}

export class Herald {
  constructor({ url, adminToken, child, exited, logFile }) {
    this.url = url;
    this.adminToken = adminToken;
    this.child = child;
    this.exited = exited;
    this.logFile = logFile;
  }

  logTail(lines = 40) {
    try {
      return fs.readFileSync(this.logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  /** SIGTERM (graceful shutdown), SIGKILL after 10 s. */
  async close() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10000);
    await this.exited;
    clearTimeout(timer);
  }

  // ---- API ---------------------------------------------------------------------------------

  /**
   * POST /admin/v1/accounts → an Account client bound to the new account's secret key.
   * `extra`: more fields of the request, e.g. {dev_mode: true} (browsers may then name their
   * user with x-herald-user-id, the SDK's `userId`).
   */
  async createAccount(name, extra = {}) {
    const created = await call("POST", `${this.url}/admin/v1/accounts`, {
      token: this.adminToken,
      body: { name, ...extra },
      expect: [201],
    });
    return new Account(this, created);
  }
}

/** One account: its id, secret key (sk_…) and public key (pk_…), and calls made with the sk. */
export class Account {
  constructor(herald, created) {
    this.herald = herald;
    this.id = created.id;
    this.sk = created.secret_key;
    this.pk = created.public_key;
    this.raw = created;
  }

  /** An sk-authenticated call; throws unless the status is expected. */
  call(method, pathname, opts = {}) {
    return call(method, `${this.herald.url}${pathname}`, { token: this.sk, ...opts });
  }

  /** An sk-authenticated request that never throws on status ({status, body}). */
  request(method, pathname, opts = {}) {
    return request(method, `${this.herald.url}${pathname}`, { token: this.sk, ...opts });
  }

  /** POST /v1/channels: a web_push channel; the answer carries `vapid_public_key`. */
  createWebPushChannel(name = "web") {
    return this.call("POST", "/v1/channels", {
      body: { type: "web_push", name, config: { subject: "mailto:browser-tests@example.com" } },
      expect: [201],
    });
  }

  /** POST /v1/users/{user}/subscriptions with a browser's PushSubscription.toJSON(). */
  registerSubscription(user, channelId, subscriptionJson) {
    return this.call("POST", `/v1/users/${encodeURIComponent(user)}/subscriptions`, {
      body: {
        channel_id: channelId,
        settings: { endpoint: subscriptionJson.endpoint, keys: subscriptionJson.keys },
      },
      expect: [200, 201],
    });
  }

  /** POST /v1/notifications (`{to, title, body, ...}`); answers 202 {id, deliveries}. */
  send(body, headers = {}) {
    return this.call("POST", "/v1/notifications", { body, headers, expect: [202] });
  }

  getNotification(id) {
    return this.call("GET", `/v1/notifications/${encodeURIComponent(id)}`);
  }

  getSubscription(id) {
    return this.call("GET", `/v1/subscriptions/${id}`);
  }

  /** GET /v1/users/{user}/subscriptions: the user's subscriptions (every status). */
  async userSubscriptions(user) {
    return (await this.call("GET", `/v1/users/${encodeURIComponent(user)}/subscriptions?limit=100`)).data;
  }

  /** PATCH /v1/account (the account's own settings, e.g. {allowed_origins}). */
  patchAccount(body) {
    return this.call("PATCH", "/v1/account", { body, expect: [200] });
  }

  /** POST /v1/pairing-codes → {code, deep_link, qrcode, channel_id, user, expires_at}. */
  createPairingCode(channelId, user) {
    return this.call("POST", "/v1/pairing-codes", { body: { channel_id: channelId, user }, expect: [201] });
  }

  /**
   * Registers a fresh ES256 signing key (POST /v1/signing-keys) and returns a function minting
   * user JWTs with it, as an app's backend does: header {alg, typ, kid}, claims {sub, iat, exp}.
   */
  async userTokenMinter() {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = publicKey.export({ type: "spki", format: "pem" });
    const key = await this.call("POST", "/v1/signing-keys", {
      body: { algorithm: "ES256", public_key_pem: pem },
      expect: [201],
    });
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
    return (user, ttlSeconds = 600) => {
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64({ alg: "ES256", typ: "JWT", kid: key.id })}.${b64({ sub: user, iat: now, exp: now + ttlSeconds })}`;
      const sig = crypto.sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" });
      return `${input}.${sig.toString("base64url")}`;
    };
  }
}
