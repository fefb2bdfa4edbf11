// The screen around the content: the folding menu on phones, card labels for list tables, and
// where keyboard focus goes after HTMX swaps a part of the page. Loaded in <head> without
// defer so that the "wf-js" class is set before the first paint (no flash of an open menu).
(function () {
  "use strict";
  document.documentElement.classList.add("wf-js");

  // -- the menu button (shown at phone widths only, by the stylesheet) --------------------------
  function wireMenu() {
    var toggle = document.querySelector(".wf-menu-toggle");
    var menu = document.getElementById("wf-menu");
    if (!toggle || !menu) { return; }
    toggle.addEventListener("click", function () {
      var open = menu.classList.toggle("wf-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) {
        var first = menu.querySelector("a, button");
        if (first) { first.focus(); }
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.classList.contains("wf-open")) {
        menu.classList.remove("wf-open");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
  }

  // The menu button repeats the inbox count (kept fresh by the out-of-band swaps of the original).
  function mirrorCounts() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-mirror]"), function (copy) {
      var original = document.getElementById(copy.getAttribute("data-mirror"));
      if (!original) { return; }
      copy.textContent = original.textContent;
      copy.classList.toggle("wf-empty", original.classList.contains("wf-empty"));
    });
  }

  // -- list tables read as cards on phones: each cell gets its column's name ---------------------
  function labelCells() {
    Array.prototype.forEach.call(document.querySelectorAll("table.wf-table"), function (table) {
      var heads = table.querySelectorAll("thead th");
      if (!heads.length) { return; }
      var names = Array.prototype.map.call(heads, function (th) {
        // A column whose name is only for screen readers (the checkbox, the buttons) gets none.
        var hidden = th.querySelector(".wf-visually-hidden");
        if (hidden && !th.textContent.replace(hidden.textContent, "").trim()) { return ""; }
        return th.textContent.replace(/[↑↓]/g, "").replace(/\s+/g, " ").trim();
      });
      Array.prototype.forEach.call(table.querySelectorAll("tbody tr"), function (row) {
        Array.prototype.forEach.call(row.children, function (cell, index) {
          if (cell.tagName === "TD" && names[index] && !cell.hasAttribute("colspan")) {
            cell.setAttribute("data-label", names[index]);
          }
        });
      });
    });
  }

  // -- focus after a swap ----------------------------------------------------------------------
  // When the element that had focus is swapped away, focus would fall to <body> and a keyboard
  // or screen-reader user would start again at the top. Instead it goes to (in this order) the
  // first field the server marked invalid, the message the answer brought (a new one: a message
  // already shown before the request is no news), the same control in the new content, the
  // region's heading, or the region itself. "The same control" is found by a stable key (its id,
  // else its form's action with its name and value, or its link's address), never by its words
  // alone when those words are a row's ("Take" in every row of the queue): a control that is
  // gone leaves focus on its list, not on another row's button.
  var lost = null;

  function remember(event) {
    var target = event.detail && event.detail.target;
    var active = document.activeElement;
    if (!target || !active || active === document.body || !target.contains(active)) { return; }
    if (event.type === "htmx:beforeSwap" && lost && lost.region === target.id) { return; }
    var selection = null;
    try {
      if (typeof active.selectionStart === "number") {
        selection = [active.selectionStart, active.selectionEnd, active.selectionDirection];
      }
    } catch (ignored) { /* inputs without a caret (number, checkbox) */ }
    lost = {
      region: target.id || "",
      id: active.id || "",
      key: controlKey(active),
      tag: active.tagName,
      name: active.getAttribute("name") || "",
      text: words(active.textContent),
      // A control of a row, or one told apart by its value, has no "same words" stand-in.
      unique: !active.closest("tbody, li") && !active.hasAttribute("value"),
      selection: selection,
      flash: document.querySelector("#messages .flash"),
      at: Date.now()
    };
  }

  function words(text) {
    return (text || "").replace(/[^\p{L}\p{N}]+/gu, " ").trim().toLowerCase();
  }

  // What tells a control apart from its look-alikes and survives a redraw: the form it belongs
  // to (its action), its name and, for buttons and boxes, its value (the queue's Take carries
  // the task id); a link's address; an htmx request's URL. "" when none of these exists.
  function controlKey(element) {
    var parts = [];
    var form = element.form || (element.closest && element.closest("form"));
    if (form) {
      parts.push("form " + [form.id, form.getAttribute("method") || "get",
                            form.getAttribute("action") || form.getAttribute("hx-post") || ""].join(" "));
    }
    var name = element.getAttribute("name");
    if (name) {
      parts.push("name " + name);
      var kind = (element.getAttribute("type") || "").toLowerCase();
      if (element.tagName === "BUTTON" || kind === "checkbox" || kind === "radio" || kind === "submit") {
        parts.push("value " + (element.getAttribute("value") || ""));
      }
    }
    var address = element.getAttribute("href") || element.getAttribute("hx-get") || element.getAttribute("hx-post") ||
                  element.getAttribute("formaction");
    if (address) { parts.push("to " + address); }
    if (!parts.length) { return ""; }
    return element.tagName + " " + parts.join(" ");
  }

  function focusOn(element) {
    if (!element) { return false; }
    if (!element.matches("a[href], button, input, select, textarea, [tabindex]")) {
      element.setAttribute("tabindex", "-1");
    }
    element.focus();
    element.scrollIntoView({block: "nearest"});
    return document.activeElement === element;
  }

  function sameControl(region, info) {
    if (info.id) { return document.getElementById(info.id); }
    var candidates = Array.prototype.slice.call(region.querySelectorAll(info.tag.toLowerCase()));
    if (info.key) {
      var keyed = candidates.filter(function (element) { return controlKey(element) === info.key; });
      if (keyed.length) { return keyed[0]; }
    }
    // No control with that key (a sort link's address changes with the sort): the one control
    // with the same name and words, if there is exactly one and it is not a row's.
    if (!info.unique || !info.text) { return null; }
    var alike = candidates.filter(function (element) {
      return (element.getAttribute("name") || "") === info.name && words(element.textContent) === info.text &&
             !element.closest("tbody, li");
    });
    return alike.length === 1 ? alike[0] : null;
  }

  function withSelection(element, info) {
    if (!element || !info.selection) { return element; }
    try { element.setSelectionRange(info.selection[0], info.selection[1], info.selection[2] || "none"); } catch (ignored) { /* no caret */ }
    return element;
  }

  function freshMessage(info) {
    var flash = document.querySelector("#messages .flash");
    return flash && flash !== info.flash ? flash : null;
  }

  function restore() {
    if (!lost) { return; }
    var info = lost;
    lost = null;
    if (Date.now() - info.at > 15000) { return; }  // from a request whose answer swapped nothing
    var active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) { return; }  // autofocus or the like
    var region = info.region && document.getElementById(info.region);
    // A region swapped away or left empty and hidden (the messages): the page's content instead.
    if (!region || !region.offsetHeight) { region = document.getElementById("content"); }
    if (!region) { return; }
    var same = sameControl(region, info);
    focusOn(region.querySelector("[aria-invalid=true]")) ||
      focusOn(freshMessage(info)) ||
      (focusOn(same) && withSelection(same, info)) ||
      focusOn(region.querySelector("h1, h2, h3")) ||
      focusOn(region) ||
      focusOn(document.querySelector("#content h1"));  // the region could take none (hidden, gone)
  }

  // Before the request too: hx-disabled-elt disables the button that was pressed, and a disabled
  // button drops focus before the answer arrives.
  document.addEventListener("htmx:beforeRequest", remember);
  document.addEventListener("htmx:beforeSwap", remember);
  document.addEventListener("htmx:oobBeforeSwap", remember);
  document.addEventListener("htmx:afterSettle", function () {
    labelCells();
    mirrorCounts();
    restore();
  });
  document.addEventListener("DOMContentLoaded", function () {
    wireMenu();
    mirrorCounts();
    labelCells();
  });
})();
