// webflow's own script (the Content-Security-Policy allows no inline script).
// The server answers an HTMX request that fails with the message to show (out of band,
// with HX-Reswap: none). Anything htmx still reports as an error (an answer from a proxy,
// no network) gets a message here, so no action ever fails silently.
(function () {
  "use strict";

  function showError(text) { showMessage(text, "error"); }

  function showMessage(text, kind) {
    var box = document.getElementById("messages");
    if (!box) { return; }
    var p = document.createElement("p");
    p.className = "flash " + kind;
    p.setAttribute("role", kind === "error" ? "alert" : "status");
    p.textContent = text;
    box.replaceChildren(p);
    // No swap follows (screen.js moves focus after swaps): a button disabled while the request
    // ran (hx-disabled-elt) dropped focus to <body>; it goes to the message, not to the top.
    var active = document.activeElement;
    if (!active || active === document.body || !document.contains(active)) {
      p.setAttribute("tabindex", "-1");
      p.focus();
      p.scrollIntoView({block: "nearest"});
    }
  }

  // The browser cannot know whether a request that got no answer of webflow's was carried
  // out (a proxy's 504 can come after the work was done), so the message says neither
  // "nothing changed" nor "reload" (a reload would throw away what was typed): trying again is
  // safe, since webflow refuses a repeat of what was already done and says so.
  var KEPT = " What you typed is still here: try again in a moment (if it was done meanwhile, the page will say so).";

  function answered(xhr) {
    return "The server did not answer as it should (" + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") +
           ") and may be restarting." + KEPT;
  }

  // An error answer is swapped only when webflow wrote it (it carries X-Webflow-Answer, see
  // web.py): a proxy's 502/503 page, an empty answer or the WSGI server's bare 500 would
  // otherwise replace the task form (and what was typed in it) or a card with its text.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    var xhr = detail.xhr;
    if (!xhr || xhr.status < 400 || !detail.shouldSwap || xhr.getResponseHeader("X-Webflow-Answer")) { return; }
    detail.shouldSwap = false;
    detail.isError = false;  // said here, once
    showError(onlyReading(event) ? "The server did not answer as it should (" + xhr.status + ")." + STALE
                                 : answered(xhr));
  });

  // A page open longer than its CSRF token lives (an hour): the refusal brings a fresh token
  // (web.py), put here into the page's htmx headers and its forms, so pressing again works.
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr;
    var token = xhr && xhr.getResponseHeader("X-Webflow-CSRF-Token");
    if (!token) { return; }
    var headers = {};
    try { headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}"); } catch (ignored) { /* ours */ }
    headers["X-CSRFToken"] = token;
    document.body.setAttribute("hx-headers", JSON.stringify(headers));
    document.querySelectorAll('input[name="csrf_token"]').forEach(function (field) {
      field.value = token;
      field.defaultValue = token;
    });
  });

  // A GET the person did not send as an action (a live refresh, a job's status polling, a
  // sort or a filter) changed nothing: the page only says it may be out of date.
  var STALE = " This part of the page may be out of date until the server is back.";

  function onlyReading(event) {
    var config = event.detail && event.detail.requestConfig;
    return !!config && String(config.verb || "").toLowerCase() === "get";
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    showError(onlyReading(event) ? "The server did not answer as it should (" + xhr.status + ")." + STALE
                                 : answered(xhr));
  });
  document.addEventListener("htmx:sendError", function (event) {
    showError(onlyReading(event) ? "The server could not be reached." + STALE
                                 : "The server could not be reached (no connection, or it is restarting)." + KEPT);
  });
  document.addEventListener("htmx:timeout", function (event) {
    showError(onlyReading(event) ? "The server took too long to answer." + STALE
                                 : "The server took too long to answer." + KEPT);
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
    var ended = false;

    function poll() {
      if (busy || ended) { return; }
      busy = true;
      fetch(pollUrl, {headers: {"If-None-Match": etag}, cache: "no-store", credentials: "same-origin"})
        .then(function (response) {
          if (response.redirected || response.status === 401) {
            // The session ended (logged out in another tab, expired): the poll was led to the
            // login form, and each round would fetch it again while the page quietly went
            // stale. Stop, and say so; the next action leads to the login form and back.
            ended = true;
            body.setAttribute("data-live-feed", "ended");
            showMessage("Your session has ended, so this page no longer updates by itself. " +
                        "Reload it to log in again.", "info");
            return null;
          }
          if (response.status !== 200) { return null; }
          etag = response.headers.get("ETag") || etag;
          body.setAttribute("data-live-seen", etag);
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
      if (ended) { return; }
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

  // -- what you typed or ticked survives a redraw (README "Live updates") -----------------------
  // A swap replaces a part of the page with the server's fresh copy. Before it, the fields that
  // differ from what the server drew (a value typed, a box ticked, an option picked, any text
  // in a comment box) are noted per form (by its action); after it, they are put back into the
  // same form in the new content: only the rows still present keep their ticks. The form whose
  // answer this is (the one sent) is left to its answer. A live refresh (a request set off by
  // an "sse:" event, someone else's change) never throws away what you typed: when its new
  // content has no such form (the task went to someone else), that part is not swapped at all
  // (the banner says what happened and offers Reload), and a message you are reading stays
  // (a live answer brings no message, so it does not empty the box). A refusal (an answer of
  // 400 or more: a Put back or Delegate from a page drawn before someone else took the task)
  // keeps what you typed the same way, as a refused Complete does, and what you typed or picked
  // in the form you sent stays in its new copy.
  var KEPT_TYPES = ["checkbox", "radio"];

  function fieldsOf(form) {
    return Array.prototype.filter.call(form.elements, function (field) {
      var kind = (field.type || "").toLowerCase();
      return field.name && field.tagName !== "BUTTON" && field.tagName !== "FIELDSET" && field.tagName !== "OUTPUT" &&
             ["hidden", "submit", "button", "reset", "image", "file", "password"].indexOf(kind) < 0;
    });
  }

  function fieldKey(field) {
    return field.name + (KEPT_TYPES.indexOf(field.type) >= 0 ? "=" + field.value : "");
  }

  function isTyped(field) {
    return field.tagName === "TEXTAREA" || (field.tagName === "INPUT" && KEPT_TYPES.indexOf(field.type) < 0);
  }

  function edited(field) {
    if (KEPT_TYPES.indexOf(field.type) >= 0) { return field.checked !== field.defaultChecked; }
    if (field.tagName === "SELECT") {
      return Array.prototype.some.call(field.options, function (o) { return o.selected !== o.defaultSelected; });
    }
    return field.value !== field.defaultValue || (field.tagName === "TEXTAREA" && field.value.trim() !== "");
  }

  function formKey(form) {
    return [form.id, form.getAttribute("method") || "get", form.getAttribute("action") || form.getAttribute("hx-post") || ""].join(" ");
  }

  function formsIn(root) {
    var forms = Array.prototype.slice.call(root.querySelectorAll("form"));
    if (root.tagName === "FORM") { forms.unshift(root); }
    return forms;
  }

  // keepSent: the sent form's fields are noted too (a refusal): put back into its new copy,
  // but never a reason to keep the old part (the answer shows what the action found).
  function noteEdits(target, sent, keepSent) {
    var notes = [];
    formsIn(target).forEach(function (form) {
      var isSent = !!sent && (form === sent || form.contains(sent));
      if (isSent && !keepSent) { return; }  // its answer decides
      var fields = fieldsOf(form).filter(edited).map(function (field) {
        return {key: fieldKey(field), typed: isTyped(field), checked: field.checked, value: field.value,
                selected: field.tagName === "SELECT" ? Array.prototype.map.call(field.selectedOptions, function (o) { return o.value; }) : null};
      });
      if (fields.length) {
        notes.push({form: form, key: formKey(form), fields: fields,
                    typed: !isSent && fields.some(function (f) { return f.typed; })});
      }
    });
    return notes;
  }

  function hasForm(root, key) {
    return formsIn(root).some(function (form) { return formKey(form) === key; });
  }

  var pending = [];
  var liveAnswer = false;
  var keepTyped = false;  // a live answer or a refusal: a part that would lose typed text stays
  var oldForms = [];  // the forms on the page before this answer's swaps: never the new copy

  function putBack() {
    pending = pending.filter(function (note) {
      var form = Array.prototype.filter.call(document.querySelectorAll("form"), function (candidate) {
        return oldForms.indexOf(candidate) < 0 && formKey(candidate) === note.key;
      })[0];
      if (!form) { return true; }  // not swapped in yet
      applyFields(form, note.fields);
      // "All on this page" stays ticked only while every row's box is.
      form.querySelectorAll("input[data-select-all]").forEach(function (all) {
        var rows = form.querySelectorAll('input[type=checkbox][name="' + all.getAttribute("data-select-all") + '"]');
        if (all.checked && Array.prototype.some.call(rows, function (row) { return !row.checked; })) { all.checked = false; }
      });
      return false;
    });
  }

  function applyFields(form, saved) {
    var fields = fieldsOf(form);
    saved.forEach(function (note) {
      fields.forEach(function (field) {
        if (fieldKey(field) !== note.key) { return; }
        if (KEPT_TYPES.indexOf(field.type) >= 0) {
          field.checked = note.checked;
        } else if (field.tagName === "SELECT") {
          Array.prototype.forEach.call(field.options, function (o) { o.selected = note.selected.indexOf(o.value) >= 0; });
        } else {
          field.value = note.value;
        }
      });
    });
  }

  // -- what you typed survives a new login (README "An expired session") ------------------------
  // An action sent after the session ended is answered 401 with HX-Redirect to the login form,
  // which brings the person back to this page. Before htmx follows it, what was typed in the
  // page's forms is kept in this tab's sessionStorage (under the user's name and the page's
  // address); back on the page, logged in as the same person, it is put into the same forms
  // again (not sent: they check it and send it themselves). Anyone else logging in in that
  // tab never gets it: it is dropped when read.
  var STASH = "webflow:typed-before-login";

  function whoIsIn() {
    var name = document.querySelector(".wf-user");
    return name ? name.textContent.trim() : "";
  }

  function here() { return window.location.pathname + window.location.search; }

  // why: "login" (the session ended) or "fresh" (a page shown again by Back was out of date).
  function stashTyped(why) {
    if (!whoIsIn()) { return; }
    var notes = noteEdits(document.body, null, true).map(function (note) {
      return {key: note.key, fields: note.fields};
    });
    if (!notes.length) { return; }
    try {
      window.sessionStorage.setItem(STASH, JSON.stringify({user: whoIsIn(), page: here(), at: Date.now(),
                                                           why: why, notes: notes}));
    } catch (ignored) { /* storage full or off: the login still works */ }
  }

  document.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.status === 401 && xhr.getResponseHeader("HX-Redirect")) { stashTyped("login"); }
  });

  // -- Back (or Forward) to a page kept whole in the browser's back/forward cache -------------
  // The page is shown as it was left, which may be before what happened since (the task you
  // completed still shows its form; after logging out, your inbox). It asks the server (the
  // live poll, with what the page had seen) and loads itself again when anything changed or
  // the session ended; what was typed comes back into the same forms (stashTyped).
  window.addEventListener("pageshow", function (event) {
    var body = document.body;
    var pollUrl = body && body.getAttribute("data-live-poll");
    if (!event.persisted || !pollUrl) { return; }
    var etag = body.getAttribute("data-live-seen") || '"' + body.getAttribute("data-live-etag") + '"';
    fetch(pollUrl, {headers: {"If-None-Match": etag}, cache: "no-store", credentials: "same-origin"})
      .then(function (response) {
        if (response.status === 304) { return false; }
        if (response.redirected || response.status !== 200) { return true; }  // logged out, or unsure
        return response.json().then(function (answer) { return !!(answer.events && answer.events.length); });
      })
      .then(function (stale) {
        if (stale) {
          stashTyped("fresh");
          window.location.reload();
        }
      })
      .catch(function () { /* no server: the page stays as it is, live updates catch up later */ });
  });

  function bringBackTyped() {
    var kept = null;
    try {
      kept = JSON.parse(window.sessionStorage.getItem(STASH) || "null");
      if (kept && whoIsIn()) { window.sessionStorage.removeItem(STASH); }
    } catch (ignored) { return; }
    if (!kept || !whoIsIn() || kept.user !== whoIsIn() || kept.page !== here() ||
        !(Date.now() - kept.at < 3600 * 1000)) { return; }
    var back = false;
    (kept.notes || []).forEach(function (note) {
      var form = Array.prototype.filter.call(document.querySelectorAll("form"), function (candidate) {
        return formKey(candidate) === note.key;
      })[0];
      if (form) { applyFields(form, note.fields); back = true; }
    });
    if (back) {
      showMessage(kept.why === "fresh" ?
                  "This page had changed since you left it and was loaded again; what you typed is back in the form. " +
                  "Nothing was sent." :
                  "What you typed before you logged in again is back in the form. Nothing was sent: " +
                  "check it and send it again.", "info");
    }
  }

  function isLive(config) {
    var trigger = config && config.triggeringEvent;
    return !!(trigger && typeof trigger.type === "string" && trigger.type.indexOf("sse:") === 0);
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    pending = [];
    oldForms = Array.prototype.slice.call(document.querySelectorAll("form"));
    liveAnswer = isLive(detail.requestConfig);
    var refusal = !!detail.xhr && detail.xhr.status >= 400;
    keepTyped = liveAnswer || refusal;
    if (!detail.shouldSwap || !detail.target) { return; }
    var notes = noteEdits(detail.target, detail.requestConfig && detail.requestConfig.elt, refusal);
    if (keepTyped && notes.some(function (n) { return n.typed; }) && typeof detail.serverResponse === "string") {
      var answer = new DOMParser().parseFromString(detail.serverResponse, "text/html").body;
      if (notes.some(function (n) { return n.typed && !hasForm(answer, n.key); })) {
        detail.shouldSwap = false;  // what you typed stays; the banner (or message) says what changed
        liveAnswer = false;
        keepTyped = false;
        return;
      }
    }
    pending = pending.concat(notes);
  });
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var detail = event.detail;
    var target = detail.target;
    if (!target || !detail.shouldSwap) { return; }
    if (liveAnswer && target.id === "messages" && !detail.fragment.querySelector(".flash")) {
      detail.shouldSwap = false;  // the message you are reading stays
      return;
    }
    var notes = noteEdits(target, null);
    if (keepTyped && notes.some(function (n) { return n.typed && !hasForm(detail.fragment, n.key); })) {
      detail.shouldSwap = false;
      return;
    }
    pending = pending.concat(notes);
  });
  document.addEventListener("htmx:oobAfterSwap", putBack);
  document.addEventListener("htmx:afterSwap", function () {
    putBack();
    pending = [];
    oldForms = [];
    liveAnswer = false;
    keepTyped = false;
  });

  function ready() {
    bringBackTyped();
    startLiveUpdates();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
