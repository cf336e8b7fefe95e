// The test application's origin: a tiny static server for browser-tests/app/ on
// http://localhost:<port> (a secure context, like 127.0.0.1, so service workers and Push work),
// plus an event sink the service worker reports to.
//
//   GET  /<file>        files of browser-tests/app/ (no caching, so a new worker is always fetched);
//                       in .html and .js files "{{HERALD_URL}}" is replaced by Herald's base URL
//                       (`heraldUrl`, set by the runner once Herald is up), so a page can load
//                       <script src="http://127.0.0.1:<A>/sdk/herald.js"> as a real app would
//   POST /__events      the worker (or page) records {type, ...}; stored in order with a seq
//   GET  /__events      everything recorded so far
//
// Events reach the harness in-process (server.events / waitForEvent), so a test can wait for
// "the worker saw notificationclick" without any page being open.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { waitFor } from "./util.mjs";

const APP_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "app");

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".css": "text/css",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

export async function startAppServer({ port = 0 } = {}) {
  const events = [];
  let seq = 0;
  let heraldUrl = null;

  const handler = async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (url.pathname === "/__events") {
      if (req.method === "POST") {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        let event;
        try {
          event = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          res.writeHead(400).end();
          return;
        }
        events.push({ seq: ++seq, t: Date.now(), ...event });
        res.writeHead(204).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(events));
      return;
    }
    let rel = decodeURIComponent(url.pathname);
    if (rel.endsWith("/")) rel += "index.html";
    const file = path.normalize(path.join(APP_DIR, rel));
    if (!file.startsWith(APP_DIR + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const headers = {
      "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
      "cache-control": "no-store",
    };
    if ([".html", ".js"].includes(path.extname(file))) {
      const text = fs.readFileSync(file, "utf8");
      if (text.includes("{{HERALD_URL}}")) {
        if (!heraldUrl) {
          res.writeHead(503, { "content-type": "text/plain" }).end("Herald's URL is not known yet");
          return;
        }
        res.writeHead(200, headers).end(text.replaceAll("{{HERALD_URL}}", heraldUrl));
        return;
      }
    }
    res.writeHead(200, headers);
    fs.createReadStream(file).pipe(res);
  };

  // localhost resolves to 127.0.0.1 and ::1; listen on both loopback addresses (::1 only if the
  // machine has IPv6), never on a public interface.
  const v4 = http.createServer(handler);
  await new Promise((resolve, reject) => {
    v4.once("error", reject);
    v4.listen(port, "127.0.0.1", resolve);
  });
  const actual = v4.address().port;
  const servers = [v4];
  const v6 = http.createServer(handler);
  await new Promise((resolve) => {
    v6.once("error", () => resolve()); // no IPv6 loopback: fine
    v6.listen(actual, "::1", () => {
      servers.push(v6);
      resolve();
    });
  });

  return {
    port: actual,
    origin: `http://localhost:${actual}`,
    events,
    /** Events of `type` (optionally matching `pred`) recorded after seq `after`. */
    eventsOf(type, { after = 0, pred = () => true } = {}) {
      return events.filter((e) => e.type === type && e.seq > after && pred(e));
    },
    /** Resolves with the first event of `type` after seq `after` that matches `pred`. */
    waitForEvent(type, { after = 0, pred = () => true, timeoutMs = 20000 } = {}) {
      return waitFor(`worker event "${type}"`, () => this.eventsOf(type, { after, pred })[0], { timeoutMs });
    },
    get lastSeq() {
      return seq;
    },
    /** Herald's base URL, substituted for {{HERALD_URL}} in the app's files. */
    get heraldUrl() {
      return heraldUrl;
    },
    set heraldUrl(url) {
      heraldUrl = url;
    },
    close: () =>
      Promise.all(
        servers.map(
          (s) =>
            new Promise((resolve) => {
              s.closeAllConnections?.();
              s.close(() => resolve());
            }),
        ),
      ),
  };
}
