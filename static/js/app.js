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

// Times (the `timeago` filter's <time datetime="…Z" data-time="relative|absolute">): the viewer's time zone and
// the page's language instead of the server's UTC text; "in 12 minutes" / "3 hours ago" for relative ones within
// a day of now (kept up to date every minute); the full local date-time as the title.
(function () {
  "use strict";
  const DAY = 24 * 3600;
  const UNITS = [["second", 60], ["minute", 3600], ["hour", DAY]];
  function locale() {
    const lang = (document.documentElement.lang || "en").replace(/_/g, "-");
    try {
      return Intl.getCanonicalLocales(lang)[0];
    } catch (e) {
      return "en";
    }
  }
  function relative(seconds, lang) {
    const rtf = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
    let divisor = 1;
    for (const [unit, below] of UNITS) {
      if (Math.abs(seconds) < below) return rtf.format(Math.round(seconds / divisor), unit);
      divisor = below;
    }
    return null;
  }
  function localize(root) {
    const lang = locale();
    const short = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
    const full = new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "long" });
    const now = Date.now();
    (root || document).querySelectorAll("time[data-time]").forEach(function (el) {
      const at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      const rel = el.dataset.time === "relative" ? relative((at.getTime() - now) / 1000, lang) : null;
      el.textContent = rel === null ? short.format(at) : rel;
      el.title = full.format(at);
    });
  }
  window.prefstudioLocalizeTimes = localize;
  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  document.addEventListener("htmx:afterSettle", function () { localize(document); });
  setInterval(function () { localize(document); }, 60 * 1000);
})();
