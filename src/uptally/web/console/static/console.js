// uptally console: a little progressive JavaScript. Every page reads and works without it.
"use strict";
(function () {
  // Forms with data-confirm ask before they submit (deleting, ending sessions, ...).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  // The CSRF token for fetch() calls to the console or the API with the session cookie.
  window.uptally = {
    csrf: function () { return document.body.getAttribute("data-csrf") || ""; },
    post: function (url, body) {
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": window.uptally.csrf() },
        body: JSON.stringify(body || {})
      });
    }
  };
})();
