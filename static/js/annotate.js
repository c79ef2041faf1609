// The annotation page: keyboard-first judging, time on task, and drafts that survive a lost session.
(function () {
  "use strict";
  const LETTERS = ["A", "B", "C", "D"];
  // Time on task: a stretch without any input counts this long at most (reading a long answer without scrolling
  // for more than 30 s counts as 30 s); a hidden tab or an unfocused window counts nothing.
  const IDLE_MS = 30000;
  let rowIndex = 0;
  let current = null;  // the panel element the state above belongs to
  let shownAt = 0;  // when the item was shown (wall clock)
  let activeMs = 0;  // active time closed so far
  let lastInput = 0;  // start of the open active stretch; 0 while the page is hidden or unfocused

  function panel() { return document.getElementById("annotate-panel"); }
  function form() { return document.getElementById("judge-form"); }
  function rows() { const f = form(); return f ? Array.from(f.querySelectorAll(".dim-row")) : []; }
  function k() { const p = panel(); return p ? parseInt(p.dataset.k || "0", 10) : 0; }
  // A ranking project (k ≥ 3) types the whole order per row; a strength project (k = 2) asks how much better.
  function ranks() { const p = panel(); return !!(p && p.dataset.ranks === "1" && window.PrefRanking); }
  function strong() { const p = panel(); return !!(p && p.dataset.strength === "1"); }
  function draftKey() { const p = panel(); return p && p.dataset.assignment ? "prefstudio:draft:" + p.dataset.mode + ":" + p.dataset.assignment : null; }

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text"));
  }

  function setRow(i, keepScroll) {
    const all = rows();
    if (!all.length) return;
    rowIndex = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (r, j) { r.classList.toggle("active", j === rowIndex); });
    all[rowIndex].focus({ preventScroll: !!keepScroll });
  }

  // A new item opens at its top: the progress line ("Saved") and the prompt, not the Overall row below the answers.
  function showTop() {
    const p = panel();
    if (!p || !p.querySelector(".prompt")) return;
    const top = p.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight / 3) window.scrollBy(0, top);
  }

  function check(row, name, value) {
    const input = row.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
    return !!input;
  }

  function clear(row, name) {
    row.querySelectorAll('input[name="' + name + '"]').forEach(function (i) { i.checked = false; });
  }

  function value(row, name) {
    const c = row.querySelector('input[name="' + name + '"]:checked');
    return c ? c.value : "";
  }

  function optional(row) { return row.dataset.optional === "1"; }

  function answered(row) {
    const dim = row.dataset.dim;
    const v = value(row, dim);
    if (v) return !(strong() && LETTERS.indexOf(v) >= 0) || !!value(row, dim + "__strength");
    if (ranks()) return window.PrefRanking.complete(row);
    return k() > 2 && value(row, dim + "__best") && value(row, dim + "__worst");
  }

  function pick(letter) {
    const row = rows()[rowIndex];
    if (!row || LETTERS.indexOf(letter) >= k()) return;
    const dim = row.dataset.dim;
    if (k() === 2) {
      check(row, dim, letter);
      if (!strong() || value(row, dim + "__strength")) setRow(rowIndex + 1);  // else: 1–3 says how much
      return;
    }
    if (ranks()) { rankKey(row, letter); return; }
    clear(row, dim);  // no longer tie / n.a.
    const best = value(row, dim + "__best");
    const worst = value(row, dim + "__worst");
    if (!best || (best && worst)) {
      clear(row, dim + "__worst");
      check(row, dim + "__best", letter);
    } else if (letter !== best) {
      check(row, dim + "__worst", letter);
      setRow(rowIndex + 1);
    }
  }

  function mark(kind) {
    const row = rows()[rowIndex];
    if (!row) return;
    const dim = row.dataset.dim;
    if (check(row, dim, kind)) {
      clear(row, dim + "__best");
      clear(row, dim + "__worst");
      clear(row, dim + "__strength");
      if (ranks() && !window.PrefRanking.empty(row)) window.PrefRanking.set(row, "");
      setRow(rowIndex + 1);
    }
  }

  // A letter or a sign typed on a ranking row: it joins the order (no longer tie / n.a.); a complete order moves on.
  // On an order the judge suggested (untouched so far), a letter starts the annotator's own order afresh.
  function rankKey(row, key) {
    clear(row, row.dataset.dim);
    if (row.dataset.prefilled === "1" && LETTERS.indexOf(key) >= 0) { delete row.dataset.prefilled; window.PrefRanking.set(row, ""); }
    window.PrefRanking.type(row, key);
    if (key !== "Backspace" && window.PrefRanking.complete(row)) setRow(rowIndex + 1);
  }

  // 1–3 after A or B on a strength row: slightly, better, much better.
  function strength(n) {
    const row = rows()[rowIndex];
    if (!row || !value(row, row.dataset.dim) || LETTERS.indexOf(value(row, row.dataset.dim)) < 0) return;
    if (check(row, row.dataset.dim + "__strength", String(n))) setRow(rowIndex + 1);
  }

  function sameAsOverall(row) {
    const overall = rows()[0];
    if (!overall || row === overall || !answered(overall)) return false;
    ["", "__best", "__worst", "__strength"].forEach(function (suffix) {
      const v = value(overall, "overall" + suffix);
      if (v) check(row, row.dataset.dim + suffix, v);
      else clear(row, row.dataset.dim + suffix);
    });
    if (ranks()) window.PrefRanking.set(row, window.PrefRanking.value(overall));
    return true;
  }

  function copyOverall() {
    rows().slice(1).forEach(function (row) { if (!answered(row)) sameAsOverall(row); });
  }

  function toggle(name) {
    const f = form();
    const box = f && f.querySelector('input[name="' + name + '"]');
    if (box) { box.checked = !box.checked; saveDraft(false); }
  }

  // Active time: each stretch since the last input counts up to IDLE_MS; hiding the page closes the stretch.
  function closeStretch(now) {
    if (lastInput) activeMs += Math.min(now - lastInput, IDLE_MS);
    lastInput = 0;
  }

  function activity() {
    if (!shownAt || document.hidden) return;
    const now = performance.now();
    closeStretch(now);
    lastInput = now;
  }

  function pause() { closeStretch(performance.now()); }

  function seconds(ms) { return String(Math.round(ms / 100) / 10); }

  function timeOnTask() {
    const now = performance.now();
    const open = lastInput ? Math.min(now - lastInput, IDLE_MS) : 0;
    const wall = shownAt ? now - shownAt : 0;
    return { wall: wall, active: Math.min(activeMs + open, wall) };
  }

  function missingRows() {
    return rows().filter(function (row) { return !optional(row) && !answered(row); });
  }

  function firstUnanswered() { const m = missingRows()[0]; return m ? rows().indexOf(m) : -1; }

  // "3 dimensions left: Honest, Polite, Refusal" in the page's live region; empty once nothing is missing.
  function sayMissing(missing) {
    const note = document.getElementById("missing-note");
    rows().forEach(function (row) { row.classList.toggle("missing", missing.indexOf(row) >= 0); });
    if (!note) return;
    if (!missing.length) { note.textContent = ""; note.hidden = true; return; }
    const names = missing.map(function (row) {
      const label = row.querySelector(".dim-label");
      return (label ? label.textContent : row.dataset.dim).trim();
    });
    const template = missing.length === 1 ? note.dataset.one : note.dataset.many;
    note.textContent = template.replace("{n}", String(missing.length)).replace("{names}", names.join(", "));
    note.hidden = false;
  }

  function submit() {
    const f = form();
    if (!f) return;
    const missing = missingRows();
    if (missing.length) {
      sayMissing(missing);
      setRow(rows().indexOf(missing[0]));
      return;
    }
    // htmx binds a swapped-in form only when it settles (20 ms later): a quick Enter would post it natively.
    if (window.htmx && f.hasAttribute("hx-post")) window.htmx.process(f);
    f.requestSubmit();
  }

  // Drafts: every change is kept in localStorage until the server has the judgment.
  function saveDraft(pending) {
    const f = form();
    const key = draftKey();
    if (!f || !key) return;
    const data = {};
    new FormData(f).forEach(function (v, name) {
      if (name !== "csrf_token" && name !== "seconds" && name !== "active_seconds") data[name] = String(v);
    });
    try { localStorage.setItem(key, JSON.stringify({ data: data, pending: !!pending, at: Date.now() })); } catch (e) { /* storage full or off */ }
  }

  function restoreDraft() {
    const f = form();
    const key = draftKey();
    if (!f || !key) return;
    let draft = null;
    try { draft = JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { draft = null; }
    if (!draft || !draft.data) return;
    Object.keys(draft.data).forEach(function (name) {
      const v = draft.data[name];
      const fields = f.querySelectorAll('[name="' + name + '"]');
      fields.forEach(function (el) {
        if (el.type === "radio" || el.type === "checkbox") el.checked = el.value === v;
        else if (el.type !== "hidden" || name === "submit_key") el.value = v;
      });
    });
    if (draft.pending) {
      // The last submit did not reach the server (e.g. the session expired): send it again.
      setTimeout(submit, 50);
    }
  }

  function clearDrafts() {
    try {
      Object.keys(localStorage).forEach(function (key) {
        if (key.indexOf("prefstudio:draft:") === 0 && key !== draftKey()) localStorage.removeItem(key);
      });
    } catch (e) { /* ignore */ }
  }

  function init() {
    const p = panel();
    if (!p || p === current) return;
    current = p;
    shownAt = performance.now();
    activeMs = 0;
    lastInput = document.hidden ? 0 : shownAt;
    rowIndex = 0;
    restoreDraft();
    if (window.PrefRanking) window.PrefRanking.refreshAll();
    const start = firstUnanswered();
    if (rows().length) { setRow(start >= 0 ? start : 0, true); showTop(); }
    // The diff key is offered only with a diff to show.
    document.querySelectorAll("[data-needs-diff]").forEach(function (el) { el.hidden = !document.getElementById("diff"); });
    rows().forEach(function (row, i) {
      row.addEventListener("click", function () { rowIndex = i; rows().forEach(function (r, j) { r.classList.toggle("active", j === i); }); });
    });
    const f = form();
    if (f) {
      f.addEventListener("change", function () {
        saveDraft(false);
        const note = document.getElementById("missing-note");
        if (note && !note.hidden) sayMissing(missingRows());
      });
      f.addEventListener("input", function (ev) {
        const row = ev.target.closest && ev.target.closest(".dim-row");
        if (row && row.dataset.prefilled === "1") delete row.dataset.prefilled;  // the order was edited: it is theirs
        saveDraft(false);
      });
    }
  }

  // In the capture phase: htmx reads the form's values in its own submit listener, on the form itself.
  document.addEventListener("submit", function (ev) {
    const f = form();
    if (!f || ev.target !== f) return;
    const time = timeOnTask();
    f.querySelector('input[name="seconds"]').value = seconds(time.wall);
    const active = f.querySelector('input[name="active_seconds"]');
    if (active) active.value = seconds(time.active);
    saveDraft(true);
  }, true);

  document.addEventListener("visibilitychange", function () { if (document.hidden) pause(); else activity(); });
  window.addEventListener("blur", pause);
  window.addEventListener("focus", activity);
  ["keydown", "pointerdown", "pointermove", "wheel", "scroll", "touchstart", "input"].forEach(function (type) {
    window.addEventListener(type, activity, { capture: true, passive: true });
  });

  document.addEventListener("htmx:afterSettle", function (ev) {
    if (ev.target && ev.target.id === "annotate-panel") { clearDrafts(); init(); }
  });
  document.addEventListener("htmx:responseError", function (ev) {
    // A refused submit keeps the draft but is no longer "pending" (unless the session is gone).
    if (ev.detail && ev.detail.xhr && ev.detail.xhr.status !== 401) saveDraft(false);
  });

  function toggleHidden(id) {
    const el = document.getElementById(id);
    if (el) el.hidden = !el.hidden;
    return el;
  }

  document.addEventListener("click", function (ev) {
    const t = ev.target.closest("[data-action]");
    if (!t) return;
    if (t.dataset.action === "toggle-guidelines") toggleHidden("guidelines");
    if (t.dataset.action === "toggle-help") toggleHidden("help");
    if (t.dataset.action === "dismiss-feedback") { toggleHidden("suggestion-feedback"); setRow(rowIndex, true); }
    if (t.dataset.action === "same-as-overall") {
      const row = t.closest(".dim-row");
      if (row && !sameAsOverall(row)) { const o = rows()[0]; if (o) { sayMissing([o]); setRow(0); } }
    }
  });

  // Enter on these does their own thing (follow the link, press the button, open the details, a new line…);
  // the judgment form's radio buttons and check boxes are part of the answer, so Enter there submits it.
  function ownsEnter(el) {
    if (!el || el === document.body) return false;
    const f = form();
    if (el.tagName === "INPUT" && (el.type === "radio" || el.type === "checkbox") && f && f.contains(el)) return false;
    return /^(A|BUTTON|SUMMARY|TEXTAREA|SELECT|INPUT)$/.test(el.tagName) || el.isContentEditable;
  }

  document.addEventListener("keydown", function (ev) {
    if (!panel()) return;
    init();  // a key pressed between htmx's swap and settle belongs to the new item, not the old row
    const active = document.activeElement;
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && form()) { ev.preventDefault(); submit(); return; }
    if (ev.key === "Escape") {
      const help = document.getElementById("help");
      if (help && !help.hidden) { help.hidden = true; return; }
      const feedback = document.getElementById("suggestion-feedback");
      if (feedback && !feedback.hidden && !typing(active)) { feedback.hidden = true; return; }
      if (typing(active)) { active.blur(); setRow(rowIndex); return; }
      const g = document.getElementById("guidelines");
      if (g && !g.hidden) g.hidden = true;
      return;
    }
    if (ev.key === "Enter" && active && active.classList.contains("rank-input")) {
      // The order is typed: Enter leaves its box for the next row (it does not submit half a judgment).
      ev.preventDefault();
      const row = active.closest(".dim-row");
      active.blur();
      setRow(rows().indexOf(row) + 1);
      return;
    }
    if (typing(active)) return;  // letters are text there; Enter submits the skip form from its box
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Enter" && ownsEnter(active)) return;
    const key = ev.key;
    const upper = key.length === 1 ? key.toUpperCase() : key;
    let handled = true;
    const row = rows()[rowIndex];
    const ranking = ranks() && row && row.dataset.dim;
    if (ranking && (key === ">" || key === "Backspace" || (key === "=" && !window.PrefRanking.empty(row)))) {
      rankKey(row, key);  // "=" on an empty order still copies the overall answer (below)
    } else if (strong() && /^[1-3]$/.test(key)) strength(parseInt(key, 10));
    else if (LETTERS.indexOf(upper) >= 0) pick(upper);
    else if (/^[1-4]$/.test(key)) pick(LETTERS[parseInt(key, 10) - 1]);
    else if (upper === "T") mark("tie");
    else if (upper === "N") mark("na");
    else if (key === "ArrowDown" || upper === "J") setRow(rowIndex + 1);
    else if (key === "ArrowUp" || upper === "K") setRow(rowIndex - 1);
    else if (key === "=") copyOverall();
    else if (upper === "R") { const r = document.getElementById("reason"); if (r) r.focus(); }
    else if (upper === "X") toggle("all_bad");
    else if (upper === "P") toggle("problematic");
    else if (upper === "S") { const s = document.getElementById("skip-reason"); if (s) s.focus(); }
    else if (upper === "V") { const d = document.getElementById("diff"); if (d) d.open = !d.open; else handled = false; }
    else if (upper === "G") toggleHidden("guidelines");
    else if (key === "?") toggleHidden("help");
    else if (key === "Enter") submit();
    else handled = false;
    if (handled) ev.preventDefault();
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
