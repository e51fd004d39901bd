// The dashboard's only script (CSP script-src 'self': no inline script anywhere).
(function () {
  "use strict";

  function equityCharts() {
    document.querySelectorAll("[data-equity]").forEach(function (element) {
      var points = JSON.parse(element.getAttribute("data-equity"));
      if (points.length === 0 || typeof uPlot === "undefined") { return; }
      var data = [points.map(function (p) { return p[0]; }), points.map(function (p) { return Number(p[1]); })];
      new uPlot({ width: 720, height: 220, series: [{}, { label: "Equity", stroke: "#1f5fa8" }] }, data, element);
    });
  }

  function liveWorkflow() {
    var body = document.getElementById("workflow-body");
    if (!body || !body.getAttribute("data-live")) { return; }
    var source = new EventSource(body.getAttribute("data-live"));
    var refresh = function () { htmx.ajax("GET", body.getAttribute("data-fragment"), { target: "#workflow-body", swap: "innerHTML" }); };
    source.addEventListener("changed", refresh);
    source.addEventListener("finished", function () { source.close(); refresh(); });
  }

  document.addEventListener("DOMContentLoaded", function () { equityCharts(); liveWorkflow(); });
})();
