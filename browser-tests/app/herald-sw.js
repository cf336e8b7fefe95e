// The app's service worker in the SDK tests, as sdk/README.md tells an app to write it: Herald's
// worker imported from Herald ({{HERALD_URL}} is filled in by lib/app-server.mjs). The second
// import only reports what the worker sees to the harness (POST /__events).
importScripts("{{HERALD_URL}}/sdk/herald-sw.js");
importScripts("/sw-report.js");
