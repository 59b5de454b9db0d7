// Chat page behaviour: Enter sends (Shift+Enter for a new line), charts are drawn by vega-embed
// when an answer arrives, copy buttons, and a plain-HTTP fallback when the WebSocket is down.
(function () {
  "use strict";

  function renderCharts(root) {
    if (!window.vegaEmbed) return;
    root.querySelectorAll("[data-vega-spec]:not([data-rendered])").forEach(function (el) {
      var source = document.getElementById(el.dataset.vegaSpec);
      if (!source) return;
      el.dataset.rendered = "1";
      window.vegaEmbed(el, JSON.parse(source.textContent), {
        actions: { export: true, source: false, compiled: false, editor: false },
        renderer: "svg",
      }).catch(function () { el.textContent = "This chart could not be drawn."; });
    });
  }

  function scrollToEnd() {
    window.scrollTo({ top: document.body.scrollHeight });
  }

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (box.id !== "question" || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });

  // A suggested question fills the box, ready to send or edit.
  document.addEventListener("click", function (event) {
    var suggestion = event.target.closest("[data-suggestion]");
    var box = document.getElementById("question");
    if (!suggestion || !box) return;
    box.value = suggestion.textContent;
    box.focus();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent).then(function () { button.textContent = "Copied"; });
    }
  });

  // With the socket down, the question goes over plain HTTP and the whole answer comes back at once.
  var socketOpen = false;
  document.body.addEventListener("htmx:wsOpen", function () { socketOpen = true; document.body.dataset.socket = "open"; });
  document.body.addEventListener("htmx:wsClose", function () { socketOpen = false; document.body.dataset.socket = "closed"; });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "ask-form") return;
    if (socketOpen) {
      setTimeout(function () { form.reset(); }, 0);
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    htmx.ajax("POST", form.dataset.fallback, { source: form, target: "#chat-messages", swap: "beforeend" });
    form.reset();
  }, true);

  document.addEventListener("DOMContentLoaded", function () { renderCharts(document); scrollToEnd(); });
  document.body.addEventListener("htmx:load", function (event) { renderCharts(event.detail.elt); scrollToEnd(); });
  document.body.addEventListener("htmx:oobAfterSwap", function () { renderCharts(document); scrollToEnd(); });
})();
