// The dashboard's only script (CSP script-src 'self': no inline script anywhere).
(function () {
  "use strict";

  function equityCharts() {
    document.querySelectorAll("[data-equity]").forEach(function (element) {
      var points = JSON.parse(element.getAttribute("data-equity"));
      if (points.length === 0 || typeof uPlot === "undefined") { return; }
      var data = [points.map(function (p) { return p[0]; }), points.map(function (p) { return Number(p[1]); })];
      new uPlot({ width: 720, height: 220, series: [{}, { label: "Equity", stroke: "#1f5fa8" }], axes: [{}, { size: 80 }] }, data, element);
    });
  }

  var PALETTE = ["#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#4d7c0f"];

  // A strategy's allocation across its signals: the server sends cumulative weights, so each
  // series is filled down to the one below it (a stacked area).
  function stackedCharts() {
    document.querySelectorAll("[data-stacked]").forEach(function (element) {
      var chart = JSON.parse(element.getAttribute("data-stacked"));
      if (chart.x.length === 0 || typeof uPlot === "undefined") { return; }
      var series = [{}];
      var bands = [];
      chart.series.forEach(function (s, i) {
        var colour = PALETTE[i % PALETTE.length];
        series.push(i === 0 ? { label: s.label, stroke: colour, fill: colour + "66" } : { label: s.label, stroke: colour });
        if (i > 0) { bands.push({ series: [i + 1, i], fill: colour + "66" }); }
      });
      var data = [chart.x].concat(chart.series.map(function (s) { return s.values; }));
      new uPlot({ width: 720, height: 220, series: series, bands: bands, scales: { y: { range: [0, 1] } } }, data, element);
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

  document.addEventListener("DOMContentLoaded", function () { equityCharts(); stackedCharts(); liveWorkflow(); });
})();
