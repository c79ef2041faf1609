// Edit drafts the server has answered for: a saved edit's draft is dropped (the list page names it), and so is a
// conflicting edit's once the page shows it (the edit is on the page; "Discard mine" must not bring it back).
(function () {
  "use strict";
  function drop(key) {
    try { if (key && key.indexOf("prefstudio:draft:") === 0) localStorage.removeItem(key); } catch (e) { /* off */ }
  }
  const me = document.currentScript;
  if (me && me.dataset.clearDraft) drop(me.dataset.clearDraft);
  document.addEventListener("click", function (ev) {
    const link = ev.target && ev.target.closest ? ev.target.closest("[data-discard-draft]") : null;
    if (link) drop(link.getAttribute("data-discard-draft"));
  }, true);
})();
