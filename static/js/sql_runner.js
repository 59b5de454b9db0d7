// SQL runner: Ctrl/Cmd+Enter runs the editor's statement, and an entry of the history loads into
// the editor instead of reloading the page (its link still works without this script).
(function () {
  "use strict";

  document.addEventListener("keydown", function (event) {
    const editor = event.target;
    if (!(editor instanceof HTMLTextAreaElement) || !editor.classList.contains("sql-editor")) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      editor.form.requestSubmit();
    }
  });

  document.addEventListener("click", function (event) {
    const item = event.target.closest("a[data-sql]");
    const editor = document.querySelector("textarea.sql-editor");
    // A modified click opens the link elsewhere, as links do.
    if (!item || !editor || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    editor.value = item.dataset.sql;
    editor.focus();
    editor.setSelectionRange(editor.value.length, editor.value.length);
  });
})();
