// Select-all and the live count and size of what is ticked. The form works without this file.
"use strict";

(() => {
  const form = document.querySelector("form.listing");
  if (!form) return;
  const boxes = [...form.querySelectorAll('input[name="path"]')];
  const all = document.getElementById("select-all");
  const summary = document.getElementById("summary");
  const buttons = [...form.querySelectorAll('button[type="submit"]')];
  const units = ["KB", "MB", "GB", "TB", "PB", "EB"];

  // The same rule as page.human_size, so the total reads like the sizes in the table.
  const human = (n) => {
    if (n < 1000) return n === 1 ? "1 byte" : `${n} bytes`;
    let value = n / 1000;
    let unit = 0;
    while (value >= 999.5 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${value < 9.95 ? value.toFixed(1) : value.toFixed(0)} ${units[unit]}`;
  };
  const count = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  const update = () => {
    const ticked = boxes.filter((b) => b.checked);
    const folders = ticked.filter((b) => b.dataset.kind === "dir").length;
    const files = ticked.length - folders;
    const bytes = ticked.reduce((sum, b) => sum + Number(b.dataset.size), 0);
    const parts = [];
    if (folders) parts.push(count(folders, "folder"));
    if (files) parts.push(`${count(files, "file")} (${human(bytes)})`);
    summary.textContent = parts.length ? `${parts.join(", ")} selected` : "Nothing selected";
    for (const b of buttons) b.disabled = ticked.length === 0;
    all.checked = ticked.length > 0 && ticked.length === boxes.length;
    all.indeterminate = ticked.length > 0 && ticked.length < boxes.length;
  };

  form.addEventListener("change", (event) => {
    if (event.target === all) for (const b of boxes) b.checked = all.checked;
    update();
  });
  // Back/forward restores ticks from the cache without a change event.
  window.addEventListener("pageshow", update);
  all.hidden = false;
  all.disabled = boxes.length === 0;
  update();
})();
