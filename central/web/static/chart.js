/* SmartGate: a tiny dependency-free SVG chart (grouped bars or lines) for the dashboard. */
(function (global) {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLOURS = ["#0b5cad", "#d1495b", "#2e9c5a", "#edae49", "#6a4c93", "#00798c"];

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  /* Draw `data` = {labels: [...], series: [{name, values: [number|null]}]} into `box`.
     kind: "bar" (grouped bars) or "line". Replaces whatever the box held. */
  function render(box, data, kind) {
    var W = 420, H = 200, L = 36, R = 8, T = 8, B = 26;
    var labels = data.labels || [], series = data.series || [];
    var all = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null) all.push(v); }); });
    var max = niceMax(Math.max.apply(null, all.concat([0])));
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, role: "img"});
    var plotW = W - L - R, plotH = H - T - B;
    var y = function (v) { return T + plotH - (v / max) * plotH; };
    for (var g = 0; g <= 4; g++) {
      var gv = max * g / 4, gy = y(gv);
      svg.appendChild(el("line", {x1: L, x2: W - R, y1: gy, y2: gy, stroke: "#e3e8ee"}));
      svg.appendChild(el("text", {x: L - 4, y: gy + 3, "text-anchor": "end"},
        String(Math.round(gv * 10) / 10)));
    }
    var n = Math.max(labels.length, 1), slot = plotW / n;
    var every = Math.ceil(n / 12);
    labels.forEach(function (lab, i) {
      if (i % every === 0) {
        svg.appendChild(el("text", {x: L + slot * (i + 0.5), y: H - 8, "text-anchor": "middle"}, lab));
      }
    });
    series.forEach(function (s, si) {
      var colour = COLOURS[si % COLOURS.length];
      if (kind === "line") {
        var pts = [];
        s.values.forEach(function (v, i) {
          if (v === null) return;
          var px = L + slot * (i + 0.5), py = y(v);
          pts.push(px + "," + py);
          svg.appendChild(el("circle", {cx: px, cy: py, r: 2.5, fill: colour}));
        });
        svg.appendChild(el("polyline", {points: pts.join(" "), fill: "none", stroke: colour,
          "stroke-width": 2}));
      } else {
        var bw = Math.min((slot * 0.8) / Math.max(series.length, 1), 48);
        s.values.forEach(function (v, i) {
          if (!v) return;  /* null or zero: no bar */
          var bx = L + slot * i + (slot - bw * series.length) / 2 + bw * si;
          svg.appendChild(el("rect", {x: bx, y: y(v), width: Math.max(bw - 1, 1),
            height: T + plotH - y(v), fill: colour}, undefined));
        });
      }
    });
    var legend = document.createElement("div");
    legend.className = "legend";
    series.forEach(function (s, si) {
      var item = document.createElement("span");
      var swatch = document.createElement("i");
      swatch.style.background = COLOURS[si % COLOURS.length];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s.name));
      legend.appendChild(item);
    });
    box.replaceChildren(svg, legend);
    return svg;
  }

  global.SGChart = {render: render};
})(window);
