// The report's few interactions: sort a table by a column, filter a table or the whole page
// by text, and open the panel of a training item. It reads the page and never writes markup
// from data: ids stay text, and nothing is fetched.
(function () {
  "use strict";

  // The number a cell stands for (its data-value / data-credit, else its text), or null.
  function key(cell) {
    var raw = cell.dataset.value || cell.dataset.credit || cell.textContent;
    var n = parseFloat(String(raw).replace(/[,\s%]/g, ""));
    return isFinite(n) ? n : null;
  }

  function sortBy(table, column, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var descending = th.getAttribute("aria-sort") !== "descending";
    rows.sort(function (a, b) {
      var x = a.cells[column], y = b.cells[column];
      var kx = key(x), ky = key(y), c;
      if (kx !== null && ky !== null) { c = kx - ky; }
      else { c = x.textContent.trim().localeCompare(y.textContent.trim()); }
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  function matches(el, query) {
    return !query || el.textContent.toLowerCase().indexOf(query) >= 0;
  }

  function filterRows(table, query) {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      r.hidden = !matches(r, query);
    });
  }

  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (!th.textContent.trim()) { return; }
      th.classList.add("sort");
      th.title = "sort by " + th.textContent.trim();
      th.addEventListener("click", function () { sortBy(table, i, th); });
    });
    var box = document.createElement("input");
    box.type = "search";
    box.className = "table-filter";
    box.placeholder = "filter rows";
    box.addEventListener("input", function () { filterRows(table, box.value.trim().toLowerCase()); });
    table.parentNode.insertBefore(box, table);
  });

  // The search box: every table row, generated sample and training panel that holds the text.
  var search = document.getElementById("search");
  if (search) {
    search.hidden = false;
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      Array.prototype.forEach.call(tables, function (t) { filterRows(t, q); });
      Array.prototype.forEach.call(document.querySelectorAll("section.sample"), function (s) {
        s.hidden = !matches(s, q);
      });
    });
  }

  // Training-item panels: hidden until their item is clicked, one at a time.
  var panels = document.querySelectorAll("section.train-item");
  Array.prototype.forEach.call(panels, function (p) { p.hidden = true; });
  Array.prototype.forEach.call(document.querySelectorAll("a.show-item"), function (a) {
    a.addEventListener("click", function (event) {
      var panel = document.getElementById(a.getAttribute("href").slice(1));
      if (!panel) { return; }
      event.preventDefault();
      Array.prototype.forEach.call(panels, function (p) { p.hidden = p !== panel; });
      panel.scrollIntoView();
    });
  });
})();
