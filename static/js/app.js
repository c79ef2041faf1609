// prefstudio — behaviour shared by every page (no inline script anywhere: see the CSP).
(function () {
  "use strict";
  // Toasts fade out on their own.
  document.addEventListener("htmx:afterSwap", function (ev) {
    const box = document.getElementById("toasts");
    if (!box) return;
    box.querySelectorAll(".toast:not([data-timed])").forEach(function (t) {
      t.setAttribute("data-timed", "1");
      setTimeout(function () { t.remove(); }, 6000);
    });
  });
  // Network failure (server down): tell the user instead of doing nothing.
  document.addEventListener("htmx:sendError", function () {
    const box = document.getElementById("toasts");
    if (!box) return;
    const t = document.createElement("div");
    t.className = "toast toast-error";
    t.setAttribute("role", "alert");
    // The page carries the text in its own language (base.html); English if it does not.
    t.textContent = box.dataset.offline || "The server cannot be reached. Your work is kept; try again in a moment.";
    box.appendChild(t);
    setTimeout(function () { t.remove(); }, 8000);
  });
})();

// Upload progress for forms marked data-upload-progress (the import form): bytes sent, then "importing…".
(function () {
  "use strict";
  document.addEventListener("htmx:xhr:progress", function (ev) {
    const form = ev.target.closest && ev.target.closest("form[data-upload-progress]");
    if (!form || !ev.detail.lengthComputable) return;
    const bar = form.querySelector("progress");
    bar.hidden = false;
    bar.value = Math.round((ev.detail.loaded / ev.detail.total) * 100);
    if (ev.detail.loaded >= ev.detail.total) form.querySelector(".upload-status").hidden = false;
  });
})();
