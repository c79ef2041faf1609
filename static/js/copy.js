// Copy buttons: <button type="button" data-copy="#element-id" data-copied="Copied">Copy</button> copies the text of
// the element it names. The clipboard API where the page may use it; otherwise the text is selected and copied the
// old way, and stays selected so that Ctrl+C works if even that is refused.
(function () {
  "use strict";
  function selectText(el) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  function fallback(el) {
    selectText(el);
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }
  function done(button, ok) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = ok ? (button.dataset.copied || "Copied") : (button.dataset.select || "Selected: press Ctrl+C");
    button.classList.toggle("copied", ok);
    setTimeout(function () { button.textContent = label; button.classList.remove("copied"); }, 2500);
  }
  document.addEventListener("click", function (ev) {
    const button = ev.target.closest && ev.target.closest("button[data-copy]");
    if (!button) return;
    const el = document.querySelector(button.dataset.copy);
    if (!el) return;
    const text = el.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { done(button, true); },
        function () { done(button, fallback(el)); }
      );
    } else {
      done(button, fallback(el));
    }
  });
})();
