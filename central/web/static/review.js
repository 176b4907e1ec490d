/* Officer pages: the live review queue, and a passage with its evidence and actions. */
(function () {
  "use strict";

  function queuePage(body) {
    var selected = null;
    function rows() { return Array.prototype.slice.call(body.querySelectorAll("tr[data-href]")); }
    function select(row) {
      rows().forEach(function (r) { r.classList.remove("selected"); });
      if (row) { row.classList.add("selected"); row.scrollIntoView({block: "nearest"}); }
      selected = row ? row.dataset.eventId : null;
    }
    function move(step) {
      var list = rows();
      if (!list.length) return;
      var i = list.findIndex(function (r) { return r.dataset.eventId === selected; });
      select(list[Math.min(Math.max(i + step, 0), list.length - 1)]);
    }
    var url = body.dataset.rowsUrl + window.location.search;
    var reload = SG.throttle(function () {
      SG.refresh(body, url).then(function () {
        var keep = rows().find(function (r) { return r.dataset.eventId === selected; });
        if (keep) keep.classList.add("selected");
      });
    }, 500);
    SG.stream(function (ev) {
      if (ev.type === "passage" || ev.type === "decision") reload();
    });
    body.addEventListener("click", function (ev) {
      var row = ev.target.closest("tr[data-href]");
      if (row && ev.target.tagName !== "A") window.location = row.dataset.href;
    });
    SG.shortcuts({
      "j": function () { move(1); },
      "k": function () { move(-1); },
      "Enter": function () {
        var row = rows().find(function (r) { return r.dataset.eventId === selected; });
        if (row) window.location = row.dataset.href;
      }
    });
  }

  function drawBoxes(figure) {
    var img = figure.querySelector("img");
    var svg = figure.querySelector("svg");
    var boxes = JSON.parse(figure.dataset.boxes || "[]");
    function draw() {
      if (!img.naturalWidth) return unavailable();
      svg.setAttribute("viewBox", "0 0 " + img.naturalWidth + " " + img.naturalHeight);
      boxes.forEach(function (b) {
        var r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
        r.setAttribute("x", b.x1); r.setAttribute("y", b.y1);
        r.setAttribute("width", b.x2 - b.x1); r.setAttribute("height", b.y2 - b.y1);
        r.setAttribute("class", b.kind + "-box");
        svg.appendChild(r);
      });
    }
    function unavailable() {
      var div = document.createElement("div");
      div.className = "placeholder";
      div.textContent = figure.dataset.unavailable;
      img.replaceWith(div);
      svg.remove();
    }
    if (img.complete) draw(); else {
      img.addEventListener("load", draw);
      img.addEventListener("error", unavailable);
    }
  }

  function crop(box) {
    var b = JSON.parse(box.dataset.box), width = 320;
    var scale = width / Math.max(b.x2 - b.x1, 1);
    var img = new Image();
    img.alt = box.dataset.alt;
    img.addEventListener("load", function () {
      img.style.width = (img.naturalWidth * scale) + "px";
      img.style.left = (-b.x1 * scale) + "px";
      img.style.top = (-b.y1 * scale) + "px";
    });
    img.addEventListener("error", function () { box.remove(); });
    box.style.width = width + "px";
    box.style.height = ((b.y2 - b.y1) * scale) + "px";
    box.appendChild(img);
    img.src = box.dataset.src;
  }

  function passagePage(page) {
    page.querySelectorAll("figure.frame").forEach(drawBoxes);
    page.querySelectorAll(".crop[data-box]").forEach(crop);
    function click(id) {
      return function () { var b = document.getElementById(id); if (b) b.click(); };
    }
    function go(attr) {
      return function () { var href = page.dataset[attr]; if (href) window.location = href; };
    }
    SG.shortcuts({
      "a": click("act-approve"), "i": click("act-inspection"), "h": click("act-hold"),
      "c": function () { var f = document.getElementById("corrected-plate"); if (f) f.focus(); },
      "j": go("next"), "k": go("prev"), "q": go("queue")
    });
  }

  var queue = document.getElementById("queue-rows");
  if (queue) queuePage(queue);
  var page = document.getElementById("passage");
  if (page) passagePage(page);
})();
