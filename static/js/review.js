// The adjudication case page: the form opens pre-filled (the stored decision, else the majority); keys change a
// row's verdict, accept the majority, or decide and move on to the next case.
(function () {
  "use strict";
  const LETTERS = ["A", "B", "C", "D"];
  let rowIndex = 0;

  function form() { return document.getElementById("review-form"); }
  function rows() { const f = form(); return f ? Array.from(f.querySelectorAll(".review-row")) : []; }
  function k() { const r = document.getElementById("review"); return r ? parseInt(r.dataset.k || "0", 10) : 0; }
  function select(row) { return row.querySelector("select"); }
  function hasOption(sel, value) { return Array.from(sel.options).some(function (o) { return o.value === value; }); }
  function say(text) { const s = document.getElementById("review-status"); if (s) s.textContent = text || ""; }

  // focus: false leaves focus where it is; "quiet" focuses without scrolling (the case opens at its prompt).
  function setRow(i, focus) {
    const all = rows();
    if (!all.length) return;
    rowIndex = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (r, j) { r.classList.toggle("active", j === rowIndex); });
    if (focus !== false) all[rowIndex].focus({ preventScroll: focus === "quiet" });
  }

  function setValue(row, value) {
    const sel = select(row);
    if (!sel || !hasOption(sel, value)) return false;
    sel.value = value;
    row.classList.toggle("changed", value !== row.dataset.majority);
    row.classList.remove("missing");
    return true;
  }

  // A letter sets the best candidate and moves on; Shift+letter sets the worst and stays on the row (k >= 3: press
  // it before the best). The other end is kept when it still differs and swapped with the old one otherwise; with
  // k = 2 it is simply the other candidate.
  function pick(letter, worst) {
    const row = rows()[rowIndex];
    const n = k();
    if (!row || LETTERS.indexOf(letter) < 0 || LETTERS.indexOf(letter) >= n) return;
    const current = select(row).value.split(">");
    let best = current.length === 2 ? current[0] : "";
    let bad = current.length === 2 ? current[1] : "";
    const others = LETTERS.slice(0, n).filter(function (l) { return l !== letter; });
    if (n === 2) {
      best = worst ? others[0] : letter;
      bad = worst ? letter : others[0];
    } else if (worst) {
      if (best === letter) best = bad;
      bad = letter;
      if (!best || best === bad) best = others[0];
    } else {
      if (bad === letter) bad = best;
      best = letter;
      if (!bad || bad === best) bad = others[others.length - 1];
    }
    if (setValue(row, best + ">" + bad) && (!worst || n === 2)) setRow(rowIndex + 1);
  }

  function mark(kind) {
    const row = rows()[rowIndex];
    if (row && setValue(row, kind)) setRow(rowIndex + 1);
  }

  function missing() { return rows().filter(function (r) { return !r.dataset.optional && !select(r).value; }); }

  function decide() {
    const f = form();
    if (!f) return;
    const left = missing();
    if (left.length) {
      left.forEach(function (r) { r.classList.add("missing"); });
      say(f.dataset.missing ? f.dataset.missing.replace("%s", left.map(function (r) { return r.dataset.dim; }).join(", ")) : "");
      setRow(rows().indexOf(left[0]));
      return;
    }
    if (window.htmx && f.hasAttribute("hx-post")) window.htmx.process(f);
    f.requestSubmit();
  }

  function acceptMajority() {
    const all = rows();
    const none = all.filter(function (r) { return !r.dataset.majority && !r.dataset.optional; });
    if (none.length) {
      none.forEach(function (r) { r.classList.add("missing"); });
      say((form().dataset.nomajority || "").replace("%s", none.map(function (r) { return r.dataset.dim; }).join(", ")));
      setRow(all.indexOf(none[0]));
      return;
    }
    all.forEach(function (r) { setValue(r, r.dataset.majority || ""); });
    const reason = document.getElementById("reason");
    if (reason && reason.value === reason.defaultValue) reason.value = "";  // a stored reason does not carry over
    decide();
  }

  // Enter belongs to the focused link, button, field or list box; it decides only from the rows or the page.
  function ownsEnter(el) {
    return el && el !== document.body && !el.classList.contains("review-row") &&
      /^(A|BUTTON|INPUT|TEXTAREA|SELECT|SUMMARY)$/.test(el.tagName);
  }

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" || (el.tagName === "INPUT" && el.type !== "hidden"));
  }

  document.addEventListener("keydown", function (ev) {
    if (!form()) return;
    const active = document.activeElement;
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); decide(); return; }
    if (ev.key === "Escape" && typing(active)) { active.blur(); setRow(rowIndex); return; }
    if (typing(active) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Enter") { if (ownsEnter(active)) return; ev.preventDefault(); decide(); return; }
    const key = ev.key;
    const upper = key.length === 1 ? key.toUpperCase() : key;
    let handled = true;
    if (LETTERS.indexOf(upper) >= 0) pick(upper, ev.shiftKey);
    else if (/^[1-4]$/.test(key)) pick(LETTERS[parseInt(key, 10) - 1], false);
    else if (upper === "Y") acceptMajority();
    else if (upper === "T") mark("tie");
    else if (upper === "N") mark("na");
    else if (upper === "U") { const r = rows()[rowIndex]; if (r) setValue(r, r.dataset.initial || ""); }
    else if (key === "ArrowDown" || upper === "J") setRow(rowIndex + 1);
    else if (key === "ArrowUp" || upper === "K") setRow(rowIndex - 1);
    else if (upper === "R") { const r = document.getElementById("reason"); if (r) r.focus(); }
    else handled = false;
    if (handled) ev.preventDefault();
  });

  document.addEventListener("click", function (ev) {
    const t = ev.target.closest("[data-action='accept-majority']");
    if (t) { ev.preventDefault(); acceptMajority(); return; }
    const row = ev.target.closest(".review-row");
    if (row) setRow(rows().indexOf(row), false);
  });

  document.addEventListener("change", function (ev) {
    const row = ev.target.closest && ev.target.closest(".review-row");
    if (row) row.classList.toggle("changed", ev.target.value !== row.dataset.majority);
  });

  function init() {
    const all = rows();
    if (!all.length) return;
    all.forEach(function (r) { r.classList.toggle("changed", !!r.dataset.majority && select(r).value !== r.dataset.majority); });
    const first = missing()[0];
    setRow(first ? all.indexOf(first) : 0, "quiet");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
