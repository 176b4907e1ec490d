/* Yard page: the live part refreshed on passage events and every 30 s; the report's plot. */
(function () {
  "use strict";
  var live = document.getElementById("yard-live");
  if (live) {
    var latest = 0;
    /* Only the newest request's answer is shown: an older, slower one never overwrites it. */
    var load = function () {
      var mine = ++latest;
      fetch(live.dataset.url, {headers: {"Accept": "text/html"}, credentials: "same-origin"})
        .then(function (r) { if (!r.ok) throw new Error("yard " + r.status); return r.text(); })
        .then(function (html) { if (mine === latest) live.innerHTML = html; })
        .catch(function (err) { console.error(err); });
    };
    var reload = SG.throttle(load, 1000);
    SG.stream(function (ev) { if (ev.type === "passage" || ev.type === "decision") reload(); });
    setInterval(reload, 30000);
  }
  var hourly = document.getElementById("hourly-chart");
  if (hourly && window.SGChart) {
    var values = hourly.dataset.hours.split(",").map(Number);
    var labels = values.map(function (_v, h) { return (h < 10 ? "0" : "") + h + ":00"; });
    SGChart.render(hourly.querySelector(".plot"), {labels: labels,
      series: [{name: hourly.querySelector("h3").textContent, values: values}]}, "bar");
  }
})();
