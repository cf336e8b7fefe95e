// Small helpers shared by the harness and the tests.

import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export { sleep };

/** A free TCP port on 127.0.0.1 (the OS picks it; there is a small race until it is bound). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls `fn` until it returns a truthy value (returned) or `timeoutMs` passes (throws with
 * `what` and the last error or value). `fn` may be async and may throw while not ready.
 */
export async function waitFor(what, fn, { timeoutMs = 15000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

/** Prints a harness line, prefixed and timestamped relative to the start of the run. */
const started = Date.now();
export function log(...parts) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[browser ${t}s]`, ...parts);
}

/** Assertion failures name what was expected and what was seen. */
export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`assertion failed: ${what}: expected ${e}, got ${a}`);
}

/**
 * fetch() with a JSON body and answer. Resolves to {status, headers, body} (body parsed as JSON
 * when it is JSON, else text); never throws on HTTP errors, so tests can assert on statuses.
 */
export async function request(method, url, { body, headers = {}, token } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    h["content-type"] ??= "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(url, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON; keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** As request, but throws unless the status is one of `expect`. Returns the body. */
export async function call(method, url, { expect = [200, 201, 202, 204], ...opts } = {}) {
  const res = await request(method, url, opts);
  if (!expect.includes(res.status)) {
    throw new Error(`${method} ${url} answered ${res.status} (expected ${expect.join("/")}): ${JSON.stringify(res.body)}`);
  }
  return res.body;
}
