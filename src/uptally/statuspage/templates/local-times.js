(function () {
  // With JavaScript, show times in the reader's own timezone; without it, the site's.
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short"
  });
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) { el.textContent = format.format(when); }
  });
  document.querySelectorAll("[data-zone]").forEach(function (el) {
    el.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone + " (your timezone)";
  });
})();
