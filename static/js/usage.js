// Usage page: the daily chart is drawn by vega-embed from the spec in its json_script tag.
(function () {
  "use strict";

  function renderCharts() {
    if (!window.vegaEmbed) return;
    document.querySelectorAll("[data-vega-spec]:not([data-rendered])").forEach(function (el) {
      var source = document.getElementById(el.dataset.vegaSpec);
      if (!source) return;
      el.dataset.rendered = "1";
      window.vegaEmbed(el, JSON.parse(source.textContent), {
        actions: { export: true, source: false, compiled: false, editor: false },
        renderer: "svg",
      }).catch(function () { el.textContent = "This chart could not be drawn."; });
    });
  }

  document.addEventListener("DOMContentLoaded", renderCharts);
  document.addEventListener("htmx:afterSettle", renderCharts);
})();
