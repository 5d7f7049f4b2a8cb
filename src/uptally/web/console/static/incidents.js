// Commitment clocks keep counting while the page is open (the server wrote them at load).
"use strict";
(function () {
  function minutes(ms) {
    if (ms < 60000) return "under a minute";
    var m = Math.floor(ms / 60000), d = Math.floor(m / 1440), h = Math.floor(m % 1440 / 60);
    m = m % 60;
    var parts = d ? [[d, "d"], [h, "h"]] : h ? [[h, "h"], [m, "min"]] : [[m, "min"]];
    return parts.filter(function (p) { return p[0]; }).map(function (p) { return p[0] + " " + p[1]; }).join(" ");
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due][data-what]").forEach(function (el) {
      var left = Number(el.getAttribute("data-due")) - now;
      var what = el.getAttribute("data-what");
      el.textContent = left > 0 ? what + " due in " + minutes(left) : what + " overdue by " + minutes(-left);
      el.className = left <= 0 ? "clock-late" : left <= Number(el.getAttribute("data-remind")) ? "clock-soon" : "clock-ok";
    });
  }
  if (document.querySelector("[data-due][data-what]")) setInterval(tick, 15000);
})();
