/* Operator dashboard: lane tiles refreshed from live events, charts from /api/dashboard/stats. */
(function () {
  "use strict";
  var tiles = document.getElementById("tiles");
  if (!tiles) return;
  var charts = document.querySelectorAll(".chart[data-metric]");

  function loadCharts() {
    fetch("/api/dashboard/stats", {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error("stats " + r.status); return r.json(); })
      .then(function (stats) {
        charts.forEach(function (box) {
          var m = box.dataset.metric, data;
          if (m === "throughput") {
            data = {labels: stats.hours, series: stats.lanes.map(function (lane) {
              return {name: lane, values: stats.throughput[lane]};
            })};
          } else {
            data = {labels: stats.lanes, series: [{name: box.querySelector("h3").textContent,
              values: stats[m]}]};
          }
          SGChart.render(box.querySelector(".plot"), data, box.dataset.kind);
        });
      })
      .catch(function (err) { console.error(err); });
  }

  var reloadTiles = SG.throttle(function () { SG.refresh(tiles, tiles.dataset.url); }, 500);
  var reloadCharts = SG.throttle(loadCharts, 5000);
  SG.stream(function (ev) {
    reloadTiles();
    if (ev.type === "passage" || ev.type === "decision") reloadCharts();
  });
  loadCharts();
  setInterval(loadCharts, 60000);
})();
