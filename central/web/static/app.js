/* SmartGate pages: live event stream, CSRF-carrying fetch, list keyboard navigation. */
(function (global) {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /* Subscribe to /events (server-sent events); `handler(event)` gets each parsed message. */
  function stream(handler) {
    var badge = document.getElementById("live");
    var source = new EventSource("/events");
    source.onopen = function () {
      if (badge) { badge.classList.add("on"); badge.textContent = badge.dataset.on; }
    };
    source.onerror = function () {
      if (badge) { badge.classList.remove("on"); badge.textContent = badge.dataset.off; }
    };
    source.onmessage = function (msg) {
      try { handler(JSON.parse(msg.data)); } catch (err) { console.error(err); }
    };
    return source;
  }

  /* Replace `target`'s children with the HTML fragment at `url` (same origin, escaped server-side). */
  function refresh(target, url) {
    return fetch(url, {headers: {"Accept": "text/html"}, credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(url + ": " + r.status); return r.text(); })
      .then(function (html) { target.innerHTML = html; });
  }

  /* Call `fn` at most once per `ms`, trailing call included. */
  function throttle(fn, ms) {
    var timer = null, pending = false;
    return function () {
      if (timer) { pending = true; return; }
      fn();
      timer = setTimeout(function () {
        timer = null;
        if (pending) { pending = false; fn(); }
      }, ms);
    };
  }

  function typing(ev) {
    var t = ev.target;
    return ev.ctrlKey || ev.metaKey || ev.altKey ||
      (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT"));
  }

  /* Bind single-letter shortcuts: keys = {"a": fn, ...}; ignored while typing in a field. */
  function shortcuts(keys) {
    document.addEventListener("keydown", function (ev) {
      if (typing(ev)) return;
      var fn = keys[ev.key];
      if (fn) { ev.preventDefault(); fn(ev); }
    });
  }

  global.SG = {csrfToken: csrfToken, stream: stream, refresh: refresh, throttle: throttle,
    shortcuts: shortcuts};
})(window);
