// The data explorer: the header checkbox ticks (or clears) every item on the page.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var all = event.target;
    if (!all || all.id !== "select-page") return;
    document.querySelectorAll('#bulk input[name="item"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
