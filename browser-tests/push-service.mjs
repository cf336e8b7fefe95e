#!/usr/bin/env node
// A test push service speaking Mozilla's WebSocket push protocol (what Firefox's
// `dom.push.serverURL` talks to, autopush in production) plus the RFC 8030 HTTP side an
// application server (Herald) posts to. No dependencies: the WebSocket handshake and framing
// are done by hand on top of node:http's `upgrade` event.
//
// Run it alone:   node browser-tests/push-service.mjs [--port N]    (prints {"port": N})
// Or import it:   const ps = await startPushService({ port: 0 })
//
// WebSocket side (ws://127.0.0.1:<port>/, subprotocol "push-notification"), JSON text frames:
//   client → server                                   server → client
//   {messageType:"hello", uaid?, use_webpush:true,     {messageType:"hello", uaid, status:200,
//    broadcasts:{}}                                      use_webpush:true, broadcasts:{}}
//   {messageType:"register", channelID, key?}          {messageType:"register", channelID,
//     (key: the VAPID public key, base64url)             status:200, pushEndpoint}
//   {messageType:"unregister", channelID, code}        {messageType:"unregister", channelID, status:200}
//   {messageType:"ack", updates:[{channelID, version, code}]}   (no answer; code 100 = delivered,
//                                                                101 = decryption error, 102 = not delivered)
//   {messageType:"nack", version, code}                (no answer; the worker's push handler failed)
//   "{}" (ping)                                        "{}"
//                                                      {messageType:"notification", channelID,
//                                                       version, data, headers:{encoding}}
//     (data: the encrypted body, base64url; headers.encoding "aes128gcm". Firefox acks each.)
//
// Firefox sends `uaid` in hello only when it has subscriptions. Answering a DIFFERENT uaid makes
// it drop every subscription and fire `pushsubscriptionchange` in each service worker: that is
// how POST /control/invalidate simulates a push service losing a browser's registrations.
//
// HTTP side:
//   POST /wpush/<channelID>   RFC 8030 push: needs Content-Encoding aes128gcm, a TTL header and,
//                             when the subscription was made with a VAPID key, a valid
//                             `Authorization: vapid t=<ES256 JWT>, k=<that key>` (RFC 8292,
//                             checked: signature, aud = this origin, exp within 24 h, sub).
//                             201 + Location when accepted (delivered now, or queued until the
//                             browser reconnects); 404 unknown channel; 410 channel dropped
//                             (unsubscribed or invalidated); 401/403 VAPID; 400 bad request.
// Control API (for tests):
//   GET  /control/log              everything received and sent, in order: [{seq, t, type, ...}]
//   GET  /control/state            uaids with their connection state and channels
//   POST /control/invalidate       {uaid?}: the next hello of that uaid (default: every known
//                                  one) gets a NEW uaid and its channels answer 410; open sockets
//                                  are closed now so Firefox reconnects at once.
//   POST /control/disconnect       {uaid?}: closes sockets without invalidating anything.
//   POST /control/respond          {status, count?, channelID?}: the next `count` (default 1)
//                                  pushes (to that channel, or any) are answered `status`
//                                  instead of being delivered (e.g. 410, 429, 500).
//   POST /control/reset            forgets the log and forced answers (not registrations).

import crypto from "node:crypto";
import http from "node:http";
import { pathToFileURL } from "node:url";

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const fromB64url = (s) => Buffer.from(String(s).replace(/=+$/, ""), "base64url");

// ---- WebSocket framing (RFC 6455), server side ------------------------------------------------

/** One accepted WebSocket: parses client frames, sends unmasked server frames. */
class WsConnection {
  constructor(socket, onText, onClose) {
    this.socket = socket;
    this.onText = onText;
    this.onClose = onClose;
    this.buffer = Buffer.alloc(0);
    this.fragments = [];
    this.closed = false;
    socket.on("data", (chunk) => this.#onData(chunk));
    socket.on("close", () => this.#finish());
    socket.on("error", () => this.#finish());
  }

  #finish() {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  #onData(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      const maskLen = masked ? 4 : 0;
      if (b.length < offset + maskLen + len) return;
      const mask = masked ? b.subarray(offset, offset + 4) : null;
      const payload = Buffer.from(b.subarray(offset + maskLen, offset + maskLen + len));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      this.buffer = b.subarray(offset + maskLen + len);
      this.#onFrame(fin, opcode, payload);
    }
  }

  #onFrame(fin, opcode, payload) {
    switch (opcode) {
      case 0x0: // continuation
      case 0x1: // text
      case 0x2: // binary (not used by the protocol; treated as text)
        this.fragments.push(payload);
        if (fin) {
          const text = Buffer.concat(this.fragments).toString("utf8");
          this.fragments = [];
          this.onText(text);
        }
        break;
      case 0x8: // close: answer with a close frame, then end the TCP connection
        this.#sendFrame(0x8, payload.subarray(0, 2));
        this.socket.end();
        break;
      case 0x9: // ping
        this.#sendFrame(0xa, payload);
        break;
      default: // pong and reserved opcodes: ignored
        break;
    }
  }

  #sendFrame(opcode, payload) {
    if (this.closed || this.socket.destroyed) return;
    const len = payload.length;
    let header;
    if (len < 126) {
      header = Buffer.from([0x80 | opcode, len]);
    } else if (len < 65536) {
      header = Buffer.alloc(4);
      header[0] = 0x80 | opcode;
      header[1] = 126;
      header.writeUInt16BE(len, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x80 | opcode;
      header[1] = 127;
      header.writeBigUInt64BE(BigInt(len), 2);
    }
    this.socket.write(Buffer.concat([header, payload]));
  }

  sendJson(value) {
    this.#sendFrame(0x1, Buffer.from(JSON.stringify(value), "utf8"));
  }

  /** Sends a close frame (status `code`) and drops the connection. */
  close(code = 1000) {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    this.#sendFrame(0x8, payload);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 200).unref();
  }
}

// ---- VAPID (RFC 8292) -------------------------------------------------------------------------

/**
 * Checks `Authorization: vapid t=<jwt>, k=<key>` against the subscription's applicationServerKey.
 * Returns null when valid, else [status, reason].
 */
function checkVapid(header, registeredKey, audience) {
  if (!registeredKey) return null; // subscribed without a key: nothing to check
  const m = /^vapid\s+(.*)$/i.exec(header || "");
  if (!m) return [401, "missing vapid authorization"];
  const params = Object.fromEntries(
    m[1].split(",").map((p) => {
      const i = p.indexOf("=");
      return [p.slice(0, i).trim(), p.slice(i + 1).trim()];
    }),
  );
  if (!params.t || !params.k) return [401, "vapid authorization needs t= and k="];
  const k = fromB64url(params.k);
  if (!k.equals(registeredKey)) return [403, "vapid key k= is not the subscription's applicationServerKey"];
  const parts = params.t.split(".");
  if (parts.length !== 3) return [401, "vapid t= is not a JWT"];
  let header_, claims;
  try {
    header_ = JSON.parse(fromB64url(parts[0]).toString("utf8"));
    claims = JSON.parse(fromB64url(parts[1]).toString("utf8"));
  } catch {
    return [401, "vapid JWT does not parse"];
  }
  if (header_.alg !== "ES256") return [401, `vapid JWT alg ${header_.alg}, expected ES256`];
  if (k.length !== 65 || k[0] !== 4) return [401, "vapid key is not an uncompressed P-256 point"];
  const key = crypto.createPublicKey({
    key: { kty: "EC", crv: "P-256", x: b64url(k.subarray(1, 33)), y: b64url(k.subarray(33, 65)) },
    format: "jwk",
  });
  const ok = crypto.verify(
    "sha256",
    Buffer.from(`${parts[0]}.${parts[1]}`),
    { key, dsaEncoding: "ieee-p1363" },
    fromB64url(parts[2]),
  );
  if (!ok) return [401, "vapid JWT signature does not verify"];
  const now = Math.floor(Date.now() / 1000);
  if (claims.aud !== audience) return [401, `vapid aud ${claims.aud}, expected ${audience}`];
  if (typeof claims.exp !== "number" || claims.exp < now || claims.exp > now + 24 * 3600 + 60) {
    return [401, `vapid exp ${claims.exp} is not within the next 24 h`];
  }
  if (typeof claims.sub !== "string" || !/^(mailto:|https:)/.test(claims.sub)) {
    return [401, `vapid sub ${claims.sub} is not mailto: or https:`];
  }
  return null;
}

// ---- The service ------------------------------------------------------------------------------

/**
 * Starts the push service on host:port (port 0 = any). Resolves to
 * {port, origin, wsUrl, close(), log, state()}.
 */
export async function startPushService({ host = "127.0.0.1", port = 0, quiet = true } = {}) {
  const uaids = new Map(); // uaid -> {conn, invalid, pending: Map(version -> message)}
  const channels = new Map(); // channelID -> {uaid, key, dropped}
  let forced = []; // [{status, count, channelID}]
  let log = [];
  let seq = 0;
  let origin = "";

  const record = (type, fields = {}) => {
    const entry = { seq: ++seq, t: Date.now(), type, ...fields };
    log.push(entry);
    if (!quiet) console.log("[push-service]", JSON.stringify(entry));
  };

  const newUaid = () => crypto.randomUUID().replace(/-/g, "");

  // --- WebSocket messages ---

  function onMessage(session, text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      record("ws.invalid-json", { text });
      return;
    }
    const type = msg.messageType;
    if (text === "{}" || type === undefined || type === "ping") {
      session.conn.sendJson({});
      return;
    }
    if (type !== "hello" && !session.uaid) {
      record("ws.before-hello", { message: msg });
      session.conn.close(1002);
      return;
    }
    switch (type) {
      case "hello": {
        let uaid = msg.uaid;
        const known = uaid && uaids.get(uaid);
        let reason = "kept";
        if (!uaid) reason = "none sent";
        else if (!known) reason = "unknown";
        else if (known.invalid) reason = "invalidated";
        if (reason !== "kept") uaid = newUaid();
        let state = uaids.get(uaid);
        if (!state) {
          state = { conn: null, invalid: false, pending: new Map() };
          uaids.set(uaid, state);
        }
        if (state.conn && state.conn !== session.conn) state.conn.close(1000);
        state.conn = session.conn;
        session.uaid = uaid;
        record("ws.hello", { sentUaid: msg.uaid ?? null, uaid, reason, use_webpush: msg.use_webpush });
        session.conn.sendJson({ messageType: "hello", uaid, status: 200, use_webpush: true, broadcasts: {} });
        // Messages that arrived while the browser was away.
        for (const m of state.pending.values()) {
          session.conn.sendJson(m);
          record("ws.notification", { channelID: m.channelID, version: m.version, redelivery: true });
        }
        break;
      }
      case "register": {
        const channelID = String(msg.channelID);
        const key = msg.key ? fromB64url(msg.key) : null;
        channels.set(channelID, { uaid: session.uaid, key, dropped: false });
        const pushEndpoint = `${origin}/wpush/${channelID}`;
        record("ws.register", { uaid: session.uaid, channelID, key: msg.key ?? null, pushEndpoint });
        session.conn.sendJson({ messageType: "register", channelID, status: 200, pushEndpoint });
        break;
      }
      case "unregister": {
        const channelID = String(msg.channelID);
        const ch = channels.get(channelID);
        if (ch) ch.dropped = true;
        record("ws.unregister", { uaid: session.uaid, channelID, code: msg.code });
        session.conn.sendJson({ messageType: "unregister", channelID, status: 200 });
        break;
      }
      case "ack": {
        const state = uaids.get(session.uaid);
        for (const u of msg.updates || []) {
          state?.pending.delete(u.version);
          record("ws.ack", { uaid: session.uaid, channelID: u.channelID, version: u.version, code: u.code });
        }
        break;
      }
      case "nack":
        record("ws.nack", { uaid: session.uaid, version: msg.version, code: msg.code });
        break;
      default:
        record("ws.unhandled", { message: msg });
    }
  }

  function onUpgrade(req, socket) {
    const key = req.headers["sec-websocket-key"];
    if (!key || String(req.headers.upgrade).toLowerCase() !== "websocket") {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    const accept = crypto.createHash("sha1").update(key + WS_GUID).digest("base64");
    const protocols = String(req.headers["sec-websocket-protocol"] || "")
      .split(",")
      .map((s) => s.trim());
    const lines = [
      "HTTP/1.1 101 Switching Protocols",
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Accept: ${accept}`,
    ];
    if (protocols.includes("push-notification")) lines.push("Sec-WebSocket-Protocol: push-notification");
    socket.write(lines.join("\r\n") + "\r\n\r\n");
    socket.setNoDelay(true);
    const session = { uaid: null, conn: null };
    session.conn = new WsConnection(
      socket,
      (text) => onMessage(session, text),
      () => {
        record("ws.closed", { uaid: session.uaid });
        const state = session.uaid && uaids.get(session.uaid);
        if (state && state.conn === session.conn) state.conn = null;
      },
    );
    record("ws.connected", { protocol: req.headers["sec-websocket-protocol"] ?? null });
  }

  // --- HTTP ---

  async function readBody(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    return Buffer.concat(chunks);
  }

  function send(res, status, body, headers = {}) {
    const json = body === undefined ? "" : JSON.stringify(body);
    res.writeHead(status, { ...(json ? { "content-type": "application/json" } : {}), ...headers });
    res.end(json);
  }

  async function onPush(req, res, channelID) {
    const body = await readBody(req);
    const entry = {
      channelID,
      bytes: body.length,
      encoding: req.headers["content-encoding"] ?? null,
      ttl: req.headers.ttl ?? null,
      urgency: req.headers.urgency ?? null,
      topic: req.headers.topic ?? null,
    };
    const answer = (status, reason, { headers, ...fields } = {}) => {
      record("http.push", { ...entry, status, reason, ...fields });
      const error = status >= 300 ? { code: status, errno: 0, error: reason, message: reason } : undefined;
      send(res, status, error, headers);
    };
    const f = forced.find((x) => !x.channelID || x.channelID === channelID);
    if (f) {
      if (--f.count <= 0) forced = forced.filter((x) => x !== f);
      return answer(f.status, "forced by /control/respond", f.status === 429 ? { headers: { "retry-after": "1" } } : {});
    }
    const ch = channels.get(channelID);
    if (!ch) return answer(404, "unknown channel");
    if (ch.dropped) return answer(410, "subscription expired");
    const vapidError = checkVapid(req.headers.authorization, ch.key, origin);
    if (vapidError) return answer(vapidError[0], vapidError[1]);
    if (req.headers.ttl === undefined || !/^\d+$/.test(req.headers.ttl)) return answer(400, "missing or invalid TTL header");
    if (body.length > 0 && entry.encoding !== "aes128gcm") return answer(400, "Content-Encoding must be aes128gcm");
    if (body.length > 4096) return answer(413, "payload too large");
    const version = crypto.randomUUID();
    const message = { messageType: "notification", channelID, version };
    if (body.length > 0) {
      message.data = b64url(body);
      message.headers = { encoding: "aes128gcm" };
    }
    const state = uaids.get(ch.uaid);
    state.pending.set(version, message);
    const delivered = !!state.conn;
    if (delivered) state.conn.sendJson(message);
    record("ws.notification", { channelID, version, redelivery: false, queued: !delivered });
    answer(201, delivered ? "delivered" : "queued", {
      version,
      headers: { location: `${origin}/m/${version}`, ttl: req.headers.ttl },
    });
  }

  async function onControl(req, res, action) {
    const raw = req.method === "POST" ? (await readBody(req)).toString("utf8") : "";
    let args = {};
    try {
      args = raw ? JSON.parse(raw) : {};
    } catch {
      return send(res, 400, { error: "body must be JSON" });
    }
    const pick = () => (args.uaid ? [args.uaid] : [...uaids.keys()]);
    switch (`${req.method} ${action}`) {
      case "GET log":
        return send(res, 200, log);
      case "GET state":
        return send(res, 200, state());
      case "POST invalidate": {
        const affected = pick();
        for (const uaid of affected) {
          const s = uaids.get(uaid);
          if (!s) continue;
          s.invalid = true;
          s.pending.clear();
          for (const ch of channels.values()) if (ch.uaid === uaid) ch.dropped = true;
          s.conn?.close(1000);
        }
        record("control.invalidate", { uaids: affected });
        return send(res, 200, { invalidated: affected });
      }
      case "POST disconnect": {
        const affected = pick().filter((u) => uaids.get(u)?.conn);
        for (const uaid of affected) uaids.get(uaid).conn.close(1000);
        record("control.disconnect", { uaids: affected });
        return send(res, 200, { disconnected: affected });
      }
      case "POST respond": {
        if (!Number.isInteger(args.status)) return send(res, 400, { error: "status must be an integer" });
        forced.push({ status: args.status, count: args.count ?? 1, channelID: args.channelID ?? null });
        record("control.respond", args);
        return send(res, 200, { forced });
      }
      case "POST reset":
        log = [];
        forced = [];
        return send(res, 200, {});
      default:
        return send(res, 404, { error: `no control action ${req.method} ${action}` });
    }
  }

  function state() {
    return [...uaids.entries()].map(([uaid, s]) => ({
      uaid,
      connected: !!s.conn,
      invalid: s.invalid,
      pending: s.pending.size,
      channels: [...channels.entries()]
        .filter(([, c]) => c.uaid === uaid)
        .map(([id, c]) => ({ channelID: id, dropped: c.dropped, key: c.key ? b64url(c.key) : null })),
    }));
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const parts = url.pathname.split("/").filter(Boolean);
    const handle = async () => {
      if (req.method === "POST" && parts[0] === "wpush" && parts.length === 2) return onPush(req, res, parts[1]);
      if (parts[0] === "control" && parts.length === 2) return onControl(req, res, parts[1]);
      send(res, 404, { error: "not found" });
    };
    handle().catch((err) => {
      record("http.error", { message: String(err) });
      if (!res.headersSent) send(res, 500, { error: String(err) });
    });
  });
  server.on("upgrade", onUpgrade);
  const sockets = new Set();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const actual = server.address().port;
  origin = `http://${host}:${actual}`;
  return {
    port: actual,
    origin,
    wsUrl: `ws://${host}:${actual}/`,
    get log() {
      return log;
    },
    state,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// Standalone: node push-service.mjs [--port N] [--verbose]
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const i = process.argv.indexOf("--port");
  const port = i > 0 ? Number(process.argv[i + 1]) : 0;
  const ps = await startPushService({ port, quiet: !process.argv.includes("--verbose") });
  console.log(JSON.stringify({ port: ps.port, wsUrl: ps.wsUrl, origin: ps.origin }));
  const stop = () => ps.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
