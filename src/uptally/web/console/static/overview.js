// The overview, live: monitor states arrive over Server-Sent Events and update the rows'
// state pills, their locations and the counts in place. Without it the page still reads.
"use strict";
(function () {
  var root = document.getElementById("overview");
  if (!root || !window.EventSource) return;
  var status = document.getElementById("live-status");
  var seq = Number(root.getAttribute("data-seq")) || 0;
  var source = null;

  function say(text, on) {
    status.textContent = text;
    status.classList.toggle("on", !!on);
  }

  function apply(change, row) {
    var pill = row.querySelector("[data-state]");
    if (pill && pill.textContent !== change.state) {
      pill.textContent = change.state;
      pill.className = "pill state-" + change.state + " changed";
    }
    var locations = row.querySelectorAll("[data-location]");
    for (var i = 0; i < locations.length; i++) {
      var name = locations[i].getAttribute("data-location");
      var state = change.locations[name];
      if (!state) continue;
      locations[i].className = "loc loc-" + state;
      locations[i].title = name + ": " + state;
      locations[i].querySelector(".loc-state").textContent = state;
    }
  }

  function count(counts) {
    var cells = document.querySelectorAll("[data-count]");
    for (var i = 0; i < cells.length; i++) {
      cells[i].textContent = String(counts[cells[i].getAttribute("data-count")] || 0);
    }
  }

  function onStates(event) {
    var frame = JSON.parse(event.data);
    if (frame.seq <= seq) return;  // already in the page
    seq = frame.seq;
    var rows = {};
    var all = document.querySelectorAll("#monitor-rows tr[data-monitor]");
    for (var i = 0; i < all.length; i++) rows[all[i].getAttribute("data-monitor")] = all[i];
    for (var id in frame.monitors) {
      if (rows[id]) apply(frame.monitors[id], rows[id]);
    }
    count(frame.counts);
  }

  // Frames were missed (a slow connection): read the page again and take its rows and counts.
  function resync() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var newRoot = fresh.getElementById("overview");
        if (!newRoot) return;
        ["monitor-rows", "counts"].forEach(function (id) {
          var now = document.getElementById(id), then = fresh.getElementById(id);
          if (now && then) now.innerHTML = then.innerHTML;
        });
        seq = Math.max(seq, Number(newRoot.getAttribute("data-seq")) || 0);
      });
  }

  function connect() {
    source = new EventSource(root.getAttribute("data-events") + "?since=" + seq);
    source.addEventListener("ready", function () { say("Live", true); });
    source.addEventListener("states", onStates);
    source.addEventListener("resync", resync);
    source.addEventListener("end", function () {
      source.close();
      say("Live updates stopped: you are signed out. Reload to sign in again.", false);
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) say("Live updates stopped. Reload the page.", false);
      else say("Reconnecting…", false);
    };
  }

  connect();
})();
