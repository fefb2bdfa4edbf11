// webflow's own script (the Content-Security-Policy allows no inline script).
// The server answers an HTMX request that fails with the message to show (out of band,
// with HX-Reswap: none). Anything htmx still reports as an error (an answer from a proxy,
// no network) gets a message here, so no action ever fails silently.
(function () {
  "use strict";

  function showError(text) {
    var box = document.getElementById("messages");
    if (!box) { return; }
    var p = document.createElement("p");
    p.className = "flash error";
    p.setAttribute("role", "alert");
    p.textContent = text;
    box.replaceChildren(p);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    showError("That did not work (the server answered " + xhr.status + " " + (xhr.statusText || "") +
              "). Nothing was changed; please reload the page and try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    showError("The server could not be reached. Nothing was changed; check the connection and try again.");
  });
  document.addEventListener("htmx:timeout", function () {
    showError("The server took too long to answer. Please reload the page to see what happened.");
  });

  // "All on this page" ticks (or clears) every row's box of its form; a row's box that is
  // cleared clears it again. The server reads the box too, so it works without JavaScript.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "checkbox" || !box.form) { return; }
    var name = box.getAttribute("data-select-all");
    if (name) {
      box.form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (row) {
        row.checked = box.checked;
      });
      return;
    }
    var all = box.form.querySelector('input[data-select-all="' + box.name + '"]');
    if (all && !box.checked) { all.checked = false; }
  });

  // Live updates (README "Live updates"). Elements that can go stale listen to events named
  // in their hx-trigger ("sse:queue", "sse:inbox", "sse:task-12"). With Redis the events
  // come over the stream htmx's sse extension keeps open on <body>; while no stream is
  // open (no Redis, Redis down, the server at its limit) this asks the server every few
  // seconds, with the ETag of what the page has seen, and fires the same events itself.
  function fireLiveEvent(name, data) {
    var wanted = "sse:" + name;
    document.querySelectorAll("[hx-trigger]").forEach(function (elt) {
      var names = elt.getAttribute("hx-trigger").split(/[\s,]+/);
      if (names.indexOf(wanted) >= 0) { htmx.trigger(elt, wanted, {data: data || ""}); }
    });
  }

  function startLiveUpdates() {
    var body = document.body;
    var pollUrl = body.getAttribute("data-live-poll");
    if (!pollUrl || typeof htmx === "undefined") { return; }
    var etag = '"' + body.getAttribute("data-live-etag") + '"';
    var seconds = parseFloat(body.getAttribute("data-live-poll-seconds")) || 5;
    var streaming = false;
    var busy = false;

    function poll() {
      if (busy) { return; }
      busy = true;
      fetch(pollUrl, {headers: {"If-None-Match": etag}, cache: "no-store", credentials: "same-origin"})
        .then(function (response) {
          if (response.status !== 200) { return null; }
          etag = response.headers.get("ETag") || etag;
          return response.json();
        })
        .then(function (answer) {
          if (answer) { answer.events.forEach(function (e) { fireLiveEvent(e.event, e.data); }); }
        })
        .catch(function () { /* the next round tries again */ })
        .then(function () { busy = false; });
    }

    window.setInterval(function () { if (!streaming && !document.hidden) { poll(); } }, seconds * 1000);
    // A stream that opens catches up once (changes since the page was drawn), then is the feed.
    function feed(stream) {
      streaming = stream;
      body.setAttribute("data-live-feed", stream ? "stream" : "polling");  // for people and tests
    }
    feed(false);
    body.addEventListener("htmx:sseOpen", function () { feed(true); poll(); });
    body.addEventListener("htmx:sseError", function () { feed(false); });
    body.addEventListener("htmx:sseClose", function () { feed(false); });
    // A comment's live event names its author: the banner says who.
    body.addEventListener("htmx:configRequest", function (event) {
      var trigger = event.detail.triggeringEvent;
      if (!trigger || !trigger.detail || !trigger.detail.data) { return; }
      try {
        var data = JSON.parse(trigger.detail.data);
        if (data.kind === "comment") {
          event.detail.parameters.kind = "comment";
          if (data.by) { event.detail.parameters.by = data.by; }
        }
      } catch (ignored) { /* not ours */ }
    });
    body.setAttribute("data-live-ready", "true");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startLiveUpdates);
  } else {
    startLiveUpdates();
  }
})();
