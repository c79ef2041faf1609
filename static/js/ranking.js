// Rankings on the annotation page: the typed order ("C>>A=BD": best first, "=" ties, ">>" much better) is the
// form's value; it is shown live as chips, which a finger drags to reorder (pointer events) and whose gap signs
// a tap cycles through > (better), = (as good) and ≫ (much better). The server parses the same text.
(function () {
  "use strict";

  // {seq: letters in order, gaps: ">" | "=" | ">>" between seq[i] and seq[i + 1], error: null | {code, arg}}
  function parse(text, letters) {
    const seq = [];
    const gaps = [];
    let link = "start";
    const tokens = text.match(/>>|≫|>|=|\s+|[\s\S]/g) || [];
    for (let i = 0; i < tokens.length; i++) {
      const tok = tokens[i];
      if (/^\s+$/.test(tok)) continue;
      if (tok === ">" || tok === ">>" || tok === "≫" || tok === "=") {
        if (link !== null) return { seq: seq, gaps: gaps, error: { code: "link", arg: tok } };
        link = tok === "≫" ? ">>" : tok;
        continue;
      }
      const letter = tok.toUpperCase();
      if (letters.indexOf(letter) < 0) return { seq: seq, gaps: gaps, error: { code: "unknown", arg: tok } };
      if (seq.indexOf(letter) >= 0) return { seq: seq, gaps: gaps, error: { code: "twice", arg: letter } };
      if (seq.length) gaps.push(link);
      seq.push(letter);
      link = null;
    }
    const missing = letters.split("").filter(function (l) { return seq.indexOf(l) < 0; });
    // While letters are missing the order is still being typed: say which, not that a sign waits for its letter.
    if (missing.length) return { seq: seq, gaps: gaps, error: { code: "missing", arg: missing.join(", ") } };
    if (link !== null && link !== "start") return { seq: seq, gaps: gaps, error: { code: "link", arg: link } };
    return { seq: seq, gaps: gaps, error: null };
  }

  function text(seq, gaps) {
    return seq.map(function (l, i) { return (i ? gaps[i - 1] : "") + l; }).join("");
  }

  function input(row) { return row ? row.querySelector(".rank-input") : null; }
  function lettersOf(row) { const c = row.querySelector(".rank-chips"); return c ? c.dataset.letters : ""; }

  function complete(row) {
    const field = input(row);
    return !!field && field.value.trim() !== "" && parse(field.value, lettersOf(row)).error === null;
  }

  function setText(row, value) {
    const field = input(row);
    if (!field) return;
    field.value = value;
    render(row);
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // The whole order, for a drag or a tap: what is typed, then the letters not placed yet.
  function fullOrder(row) {
    const letters = lettersOf(row);
    const field = input(row);
    const parsed = parse(field ? field.value : "", letters);
    const seq = parsed.error && parsed.error.code !== "missing" ? [] : parsed.seq.slice();
    const gaps = seq.length === parsed.seq.length ? parsed.gaps.slice(0, Math.max(seq.length - 1, 0)) : [];
    letters.split("").forEach(function (l) {
      if (seq.indexOf(l) < 0) { if (seq.length) gaps.push(">"); seq.push(l); }
    });
    return { seq: seq, gaps: gaps };
  }

  const SIGN = { ">": ">", "=": "=", ">>": "≫" };

  function render(row) {
    const box = row.querySelector(".rank-chips");
    const field = input(row);
    if (!box || !field) return;
    const letters = box.dataset.letters;
    const typed = field.value.trim();
    const parsed = parse(typed, letters);
    const order = typed ? parsed : { seq: [], gaps: [], error: null };
    const shown = fullOrder(row);
    box.textContent = "";
    box.classList.toggle("unset", !typed);
    shown.seq.forEach(function (l, i) {
      if (i) {
        const gap = document.createElement("button");
        gap.type = "button";
        gap.className = "rank-gap";
        gap.dataset.gap = String(i - 1);
        gap.textContent = SIGN[shown.gaps[i - 1]] || ">";
        gap.setAttribute("aria-label", gap.textContent);
        box.appendChild(gap);
      }
      const chip = document.createElement("span");
      chip.className = "rank-chip" + (order.seq.indexOf(l) < 0 ? " pending" : "");
      chip.dataset.letter = l;
      chip.textContent = l;
      box.appendChild(chip);
    });
    const note = row.querySelector(".rank-error");
    const table = row.closest("table");
    if (note) {
      const err = typed ? parsed.error : null;
      const template = err && table ? table.dataset["rank" + err.code.charAt(0).toUpperCase() + err.code.slice(1)] : "";
      note.textContent = err ? (template || err.code).replace("{arg}", err.arg) : "";
    }
    row.classList.toggle("rank-done", !!typed && parsed.error === null);
  }

  function refreshAll() { document.querySelectorAll(".dim-row").forEach(function (row) { if (input(row)) render(row); }); }

  // Keys typed on the row (not in its text box): letters and signs are appended, Backspace takes one back.
  function type(row, key) {
    const field = input(row);
    if (!field) return;
    let value = field.value.replace(/\s+$/, "");
    if (key === "Backspace") value = value.endsWith(">>") ? value.slice(0, -2) : value.slice(0, -1);
    else value += key;
    setText(row, value);
  }

  function cycleGap(row, i) {
    const order = fullOrder(row);
    const next = { ">": "=", "=": ">>", ">>": ">" };
    order.gaps[i] = next[order.gaps[i]] || ">";
    setText(row, text(order.seq, order.gaps));
  }

  function move(row, letter, to) {
    const order = fullOrder(row);
    const from = order.seq.indexOf(letter);
    if (from < 0) return;
    order.seq.splice(from, 1);
    if (order.gaps.length) order.gaps.splice(from < order.gaps.length ? from : from - 1, 1);  // its own gap goes
    order.seq.splice(to, 0, letter);
    if (order.seq.length > 1) order.gaps.splice(to === 0 ? 0 : to - 1, 0, ">");
    setText(row, text(order.seq, order.gaps));
  }

  // Where a dragged chip lands: before the first other chip whose middle lies after the pointer (reading order).
  function dropIndex(box, dragged, x, y) {
    const others = Array.from(box.querySelectorAll(".rank-chip")).filter(function (c) { return c !== dragged; });
    for (let i = 0; i < others.length; i++) {
      const r = others[i].getBoundingClientRect();
      const below = y > r.bottom;
      if (!below && (y < r.top || x < r.left + r.width / 2)) return i;
    }
    return others.length;
  }

  let drag = null;

  // A gap is tapped when the pointer goes down and up on it: on touch the browser may not follow a tap right
  // after a drag with a click (it waits to see a double tap). A click without a pointer (keyboard) counts too.
  let gapDown = null;

  document.addEventListener("pointerdown", function (ev) {
    gapDown = ev.target.closest ? ev.target.closest(".rank-gap") : null;
    const chip = ev.target.closest ? ev.target.closest(".rank-chip") : null;
    if (!chip) return;
    const row = chip.closest(".dim-row");
    drag = { chip: chip, row: row, x: ev.clientX, y: ev.clientY, id: ev.pointerId, moved: false };
    try { chip.setPointerCapture(ev.pointerId); } catch (e) { /* a synthetic pointer */ }
    ev.preventDefault();
  });

  document.addEventListener("pointermove", function (ev) {
    if (!drag || ev.pointerId !== drag.id) return;
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 6) return;
    drag.moved = true;
    drag.chip.classList.add("dragging");
    drag.chip.style.transform = "translate(" + dx + "px," + dy + "px)";
  });

  function endDrag(ev, cancelled) {
    if (!drag || ev.pointerId !== drag.id) return;
    const d = drag;
    drag = null;
    d.chip.classList.remove("dragging");
    d.chip.style.transform = "";
    if (cancelled || !d.moved) return;
    const box = d.chip.parentNode;
    move(d.row, d.chip.dataset.letter, dropIndex(box, d.chip, ev.clientX, ev.clientY));
  }

  function tapGap(gap) { cycleGap(gap.closest(".dim-row"), parseInt(gap.dataset.gap, 10)); }

  document.addEventListener("pointerup", function (ev) {
    endDrag(ev, false);
    const gap = ev.target.closest ? ev.target.closest(".rank-gap") : null;
    if (gap && gap === gapDown) tapGap(gap);
    gapDown = null;
  });
  document.addEventListener("pointercancel", function (ev) { gapDown = null; endDrag(ev, true); });

  document.addEventListener("click", function (ev) {
    const gap = ev.target.closest ? ev.target.closest(".rank-gap") : null;
    if (gap && ev.detail === 0) tapGap(gap);  // Enter or Space on a focused gap
  });

  document.addEventListener("input", function (ev) {
    if (ev.target.classList && ev.target.classList.contains("rank-input")) render(ev.target.closest(".dim-row"));
  });

  window.PrefRanking = {
    parse: parse,
    complete: complete,
    empty: function (row) { const f = input(row); return !f || f.value.trim() === ""; },
    type: type,
    set: function (row, value) { setText(row, value); },
    value: function (row) { const f = input(row); return f ? f.value : ""; },
    refreshAll: refreshAll,
  };
})();
