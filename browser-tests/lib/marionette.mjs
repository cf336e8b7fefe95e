// A small Marionette client (no dependencies).
//
// Marionette is the automation protocol built into Firefox (geckodriver translates WebDriver
// HTTP to it). Speaking it directly saves compiling geckodriver. The wire format:
//
//   every packet:  <byte length of the JSON, in decimal>:<JSON>
//   on connect:    the server sends {"applicationType":"gecko","marionetteProtocol":3}
//   a command:     [0, id, "WebDriver:Navigate", {params}]
//   its response:  [1, id, error | null, result | null]
//
// Command names and parameters are those of the WebDriver spec, prefixed "WebDriver:", plus
// Marionette's own ("Marionette:SetContext" {value: "chrome" | "content"}, "Marionette:Quit").
// In the chrome context scripts run with system privileges in the browser window (Services, Cc,
// Ci, ChromeUtils are in scope); in the content context they run in the page.

import net from "node:net";

/** The key a WebDriver element reference is stored under. */
export const ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf";

export class MarionetteError extends Error {
  constructor(command, error) {
    super(`${command}: ${error.error}: ${error.message}${error.stacktrace ? `\n${error.stacktrace}` : ""}`);
    this.name = "MarionetteError";
    this.webdriverError = error.error;
  }
}

export class Marionette {
  #socket;
  #buffer = Buffer.alloc(0);
  #nextId = 1;
  #pending = new Map();
  #hello;
  #closed = false;
  context = "content";

  /** Connects, reads the server's hello and returns the client. */
  static async connect(port, host = "127.0.0.1") {
    const client = new Marionette();
    await client.#open(port, host);
    return client;
  }

  #open(port, host) {
    return new Promise((resolve, reject) => {
      this.#hello = { resolve, reject };
      this.#socket = net.connect({ port, host });
      this.#socket.on("data", (chunk) => this.#onData(chunk));
      this.#socket.on("error", (err) => this.#fail(err));
      this.#socket.on("close", () => this.#fail(new Error("Marionette connection closed")));
    });
  }

  #fail(err) {
    this.#closed = true;
    if (this.#hello) {
      this.#hello.reject(err);
      this.#hello = null;
    }
    for (const { reject } of this.#pending.values()) reject(err);
    this.#pending.clear();
  }

  #onData(chunk) {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const colon = this.#buffer.indexOf(":");
      if (colon < 0) return;
      const length = Number(this.#buffer.subarray(0, colon).toString("ascii"));
      if (this.#buffer.length < colon + 1 + length) return;
      const json = this.#buffer.subarray(colon + 1, colon + 1 + length).toString("utf8");
      this.#buffer = this.#buffer.subarray(colon + 1 + length);
      this.#onPacket(JSON.parse(json));
    }
  }

  #onPacket(packet) {
    if (this.#hello) {
      // The first packet is the server's greeting.
      const hello = this.#hello;
      this.#hello = null;
      if (packet.marionetteProtocol !== 3) {
        hello.reject(new Error(`unexpected Marionette greeting ${JSON.stringify(packet)}`));
      } else {
        hello.resolve(packet);
      }
      return;
    }
    const [type, id, error, result] = packet;
    const pending = this.#pending.get(id);
    if (type !== 1 || !pending) return;
    this.#pending.delete(id);
    if (error) pending.reject(new MarionetteError(pending.name, error));
    else pending.resolve(result);
  }

  /** Sends one command and resolves with its result (rejects with a MarionetteError). */
  send(name, params = {}) {
    if (this.#closed) return Promise.reject(new Error(`Marionette connection closed (sending ${name})`));
    const id = this.#nextId++;
    const json = Buffer.from(JSON.stringify([0, id, name, params]), "utf8");
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, name });
      this.#socket.write(`${json.length}:`);
      this.#socket.write(json);
    });
  }

  // ---- WebDriver conveniences -------------------------------------------------------------

  async newSession(capabilities = {}) {
    return this.send("WebDriver:NewSession", capabilities);
  }

  /** Script, implicit-wait and page-load timeouts in ms. */
  async setTimeouts(timeouts) {
    return this.send("WebDriver:SetTimeouts", timeouts);
  }

  async setContext(value) {
    if (this.context === value) return;
    await this.send("Marionette:SetContext", { value });
    this.context = value;
  }

  async navigate(url) {
    await this.setContext("content");
    return this.send("WebDriver:Navigate", { url });
  }

  /**
   * Runs `script` (a function body; `arguments[i]` are `args`) in `context`. The body is wrapped
   * in an async function, so it may use `await`; the returned promise is awaited (WebDriver
   * semantics). Results must be JSON-serialisable (elements come back as references).
   */
  async execute(script, args = [], context = "content") {
    await this.setContext(context);
    const wrapped = `return (async function () {\n${script}\n}).apply(this, arguments);`;
    const result = await this.send("WebDriver:ExecuteScript", { script: wrapped, args, newSandbox: false });
    return result?.value;
  }

  /** As execute, in the browser's chrome (privileged) context. */
  async chrome(script, args = []) {
    return this.execute(script, args, "chrome");
  }

  /** A CSS selector's first element in the page; throws `no such element` if absent. */
  async findElement(selector) {
    await this.setContext("content");
    const result = await this.send("WebDriver:FindElement", { using: "css selector", value: selector });
    return result.value[ELEMENT_KEY];
  }

  /**
   * A real click: Marionette synthesises the mouse events in the parent process, so the page
   * gets trusted events and transient user activation (navigator.userActivation.isActive).
   */
  async click(selector) {
    const id = await this.findElement(selector);
    return this.send("WebDriver:ElementClick", { id });
  }

  /** Grants or denies a permission ("notifications", …) for the current page's origin. */
  async setPermission(name, state) {
    await this.setContext("content");
    return this.send("Permissions:SetPermission", { descriptor: { name }, state });
  }

  /** Asks Firefox to quit; resolves when it answered (the process exits shortly after). */
  async quit() {
    try {
      await this.send("Marionette:Quit", { flags: ["eForceQuit"] });
    } catch {
      // The connection may drop before the answer; the caller waits for the process anyway.
    }
    this.close();
  }

  close() {
    this.#closed = true;
    this.#socket?.destroy();
  }
}
