// Subscribes this browser to the channel of the pairing code on the page and redeems the code,
// with Herald's browser SDK (/sdk/herald.js, loaded before this file) in pairing mode.
// The worker is Herald's own (/sw.js, the SDK's herald-sw.js), registered at a scope per channel
// (/push/<channel>/): this origin is shared by every account and channel of this Herald, and one
// scope holds one push subscription with one VAPID key, so subscribing to a second channel must
// not replace the first one's subscription. The worker reports receipts and renews the
// subscription on `pushsubscriptionchange` with the renewal token the SDK stores per scope.
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

  var Herald = window.Herald;
  if (!Herald) {
    say("The page could not load its script; reload it to try again.", "error");
    button.disabled = true;
    return;
  }
  if (!Herald.isSupported()) {
    say("This browser cannot receive push notifications here. On an iPhone or iPad, add this page to the Home Screen first and open it from there.", "error");
    button.disabled = true;
    return;
  }

  var herald = Herald.init({
    url: window.location.origin,
    pairingCode: root.dataset.code,
    vapidKey: root.dataset.vapid,
    channelId: root.dataset.channel,
    serviceWorker: "/sw.js",
    scope: "/push/" + encodeURIComponent(root.dataset.channel) + "/"
  });

  /** What to tell the person, by the SDK's error code. */
  function explain(e) {
    switch (e && e.code) {
      case "gone":
        return "This code has already been used or has expired. Ask the service that gave it to you for a new one.";
      case "not_found":
        return "This subscribe link is not valid. Ask the service that gave it to you for a new one.";
      case "forbidden":
        return "The service behind this link cannot take subscriptions at the moment. Try again later.";
      case "network":
        return "Could not reach the server. Check your connection and try again.";
      case "permission_denied":
      case "unsupported":
        return e.message;
      default:
        return "Subscribing failed" + (e && e.status ? " (HTTP " + e.status + ")" : "") + ". Please try again.";
    }
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    say("Subscribing…");
    // Called straight from the click: the browser shows its permission prompt only then.
    herald.subscribe().then(
      function () {
        say("Subscribed. You can close this page.", "ok");
      },
      function (e) {
        say(explain(e), "error");
        // A used or unknown code stays so; anything else may work on a second try.
        button.disabled = !!(e && (e.code === "gone" || e.code === "not_found"));
      }
    );
  });
})();
