// Subscribes this browser to the channel of the pairing code on the page, then redeems the code.
// Each channel gets its own service-worker scope, so subscribing to a second channel (another
// VAPID key) does not replace the first one's push subscription.
(function () {
  "use strict";
  var root = document.getElementById("pair");
  var button = document.getElementById("subscribe");
  var status = document.getElementById("status");
  if (!root || !button) return;

  function say(text, cls) {
    status.textContent = text;
    status.className = cls || "";
  }

  function keyBytes(b64url) {
    var pad = "====".slice((b64url.length % 4) || 4);
    var raw = atob((b64url + pad).replace(/-/g, "+").replace(/_/g, "/"));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function sameKey(buffer, bytes) {
    if (!buffer) return false;
    var a = new Uint8Array(buffer);
    if (a.length !== bytes.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== bytes[i]) return false;
    return true;
  }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("This browser cannot receive push notifications here. On an iPhone or iPad, add this page to the Home Screen first and open it from there.", "error");
    button.disabled = true;
    return;
  }

  async function subscribe() {
    var permission = await Notification.requestPermission();
    if (permission !== "granted") {
      throw new Error("Notifications were not allowed. Allow them in the browser's site settings, then try again.");
    }
    var scope = "/push/" + encodeURIComponent(root.dataset.channel) + "/";
    var registration = await navigator.serviceWorker.register("/sw.js", { scope: scope });
    var worker = registration.installing || registration.waiting || registration.active;
    if (worker && worker.state !== "activated") {
      await new Promise(function (resolve) {
        worker.addEventListener("statechange", function () { if (worker.state === "activated") resolve(); });
      });
    }
    var key = keyBytes(root.dataset.vapid);
    var sub = await registration.pushManager.getSubscription();
    if (sub && !sameKey(sub.options && sub.options.applicationServerKey, key)) {
      await sub.unsubscribe();
      sub = null;
    }
    if (!sub) sub = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    var res = await fetch("/v1/pair/" + encodeURIComponent(root.dataset.code), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ settings: sub.toJSON() })
    });
    if (!res.ok) {
      var body = await res.json().catch(function () { return null; });
      throw new Error(body && body.error ? body.error.message : "Subscribing failed (HTTP " + res.status + ").");
    }
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    say("Subscribing…");
    subscribe().then(function () {
      say("Subscribed. You can close this page.", "ok");
    }, function (e) {
      say(e && e.message ? e.message : String(e), "error");
      button.disabled = false;
    });
  });
})();
