// Dashboard page behaviour: draw charts as widgets arrive (by their own request or pushed over the
// WebSocket), submit size choices at once, and let editors drag widgets to a new place.
(function () {
  "use strict";

  function drawCharts(root) {
    if (!window.vegaEmbed) return;
    root.querySelectorAll("[data-vega-spec]:not([data-drawn])").forEach(function (el) {
      var source = document.getElementById(el.dataset.vegaSpec);
      if (!source) return;
      el.dataset.drawn = "1";
      window.vegaEmbed(el, JSON.parse(source.textContent), { actions: false, renderer: "svg" })
        .catch(function () { el.textContent = "This chart could not be drawn."; });
    });
  }

  document.addEventListener("change", function (event) {
    if (!event.target.matches("[data-autosubmit]")) return;
    // A widget's controls can be used in the moment between their arrival and htmx's processing
    // of them (it binds hx-post as the swap settles); without this, that submit would be the
    // browser's own and reload the page, losing the focus.
    if (window.htmx) window.htmx.process(event.target.form);
    event.target.form.requestSubmit();
  });

  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    dragged = event.target.closest && event.target.closest(".widget[draggable]");
    if (dragged) event.dataTransfer.effectAllowed = "move";
  });
  document.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest(".widget")) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    var target = event.target.closest(".widget");
    var grid = document.getElementById("widget-grid");
    if (!dragged || !target || target === dragged || !grid) return;
    event.preventDefault();
    var after = dragged.compareDocumentPosition(target) & Node.DOCUMENT_POSITION_FOLLOWING;
    grid.insertBefore(dragged, after ? target.nextSibling : target);
    var order = Array.prototype.map.call(grid.querySelectorAll(".widget"), function (w) { return w.dataset.widget; });
    var layout = dragged.querySelector(".widget-layout");
    htmx.ajax("POST", layout.getAttribute("action"), { values: { order: order.join(",") }, swap: "none" });
    dragged = null;
  });

  // Moving or resizing a widget from the keyboard re-renders the grid, and a tile may get its
  // controls only when its own request has loaded it: the control that had the focus gets it back
  // as soon as it exists again, unless the focus has gone elsewhere by then.
  var refocus = null;
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var focused = document.activeElement;
    if (event.detail.target.id === "widget-grid" && focused && focused.id && event.detail.target.contains(focused)) {
      refocus = focused.id;
    }
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    if (!refocus) return;
    var focused = document.activeElement;
    if (focused && focused !== document.body) { refocus = null; return; }
    var control = document.getElementById(refocus);
    if (control) { control.focus(); refocus = null; }
  });

  // Refreshes arrive over the socket; the page says whether it is listening.
  document.body.addEventListener("htmx:wsOpen", function () { document.body.dataset.socket = "open"; });
  document.body.addEventListener("htmx:wsClose", function () { document.body.dataset.socket = "closed"; });

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.body.addEventListener("htmx:load", function (event) { drawCharts(event.detail.elt); });
  document.body.addEventListener("htmx:oobAfterSwap", function () { drawCharts(document); });
  window.addEventListener("load", function () { drawCharts(document); });
})();
