// Small helps only; every flow works without this file.
// A bulk action asks once before touching every discrepancy in the filtered list.
document.querySelectorAll("button[data-confirm]").forEach(function (b) {
  b.addEventListener("click", function (e) {
    if (!window.confirm(b.textContent + " × " + b.dataset.confirm + "?")) e.preventDefault();
  });
});
// Changing a select in the filter bar applies it at once.
var filters = document.getElementById("filters");
if (filters) {
  filters.querySelectorAll("select").forEach(function (s) {
    s.addEventListener("change", function () { filters.submit(); });
  });
}
