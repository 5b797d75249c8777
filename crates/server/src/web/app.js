// Progressive enhancement only: every action works without this script.
// Keeps the "N conversations selected" count in step with the checkboxes.
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.matches || !box.matches("input[name=pick]")) return;
  var count = document.querySelector("[data-selected-count]");
  if (!count) return;
  var n = parseInt(count.getAttribute("data-selected-count"), 10) + (box.checked ? 1 : -1);
  count.setAttribute("data-selected-count", String(n));
  count.textContent = n === 1 ? "1 conversation selected" : n + " conversations selected";
});
