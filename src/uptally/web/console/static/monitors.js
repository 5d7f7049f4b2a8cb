// The monitor editor: show only the chosen kind's fields (without JavaScript, "Continue" does).
"use strict";
(function () {
  var select = document.getElementById("f-kind");
  if (!select) return;
  function show() {
    var kind = select.value;
    document.querySelectorAll(".kind-section").forEach(function (section) {
      section.hidden = section.getAttribute("data-kind") !== kind;
    });
    document.querySelectorAll("[data-kinds]").forEach(function (section) {
      section.hidden = section.getAttribute("data-kinds").split(" ").indexOf(kind) < 0;
    });
  }
  select.addEventListener("change", show);
  document.querySelectorAll(".kind-continue").forEach(function (button) { button.hidden = true; });
  var hint = document.getElementById("f-kind-hint");
  if (hint) hint.textContent = "Its fields appear below.";
  show();
})();
