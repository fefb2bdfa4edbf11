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
})();
