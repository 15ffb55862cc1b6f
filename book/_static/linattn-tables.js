/* linattn-tables.js: sort and filter the book's tables in the browser, offline, no library.
   Plain ES5, no network. Loaded on every page (_config.yml: sphinx.config.html_js_files); it does
   nothing unless a page holds a table made by linattn.tables.to_html with sortable=True
   (class "linattn-sortable") or filters= (attribute data-filters). Without JavaScript the table
   is shown whole, in its printed order. */
(function () {
  "use strict";

  function cellKey(td) {
    if (!td) return { num: false, v: "" };
    var v = td.getAttribute("data-v");
    if (v !== null && v !== "" && !isNaN(parseFloat(v))) return { num: true, v: parseFloat(v) };
    return { num: false, v: (td.textContent || "").trim().toLowerCase() };
  }

  function compare(a, b) {
    if (a.num && b.num) return a.v - b.v;
    if (a.num !== b.num) return a.num ? -1 : 1;          // numbers before text ("--")
    return a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
  }

  function makeSortable(table) {
    var head = table.tHead;
    if (!head || !table.tBodies.length) return;
    var row = head.rows[head.rows.length - 1];          // the column names (under any group row)
    var body = table.tBodies[0];
    var original = Array.prototype.slice.call(body.rows);
    Array.prototype.forEach.call(row.cells, function (th, col) {
      th.setAttribute("data-sort", "none");
      th.setAttribute("tabindex", "0");
      th.setAttribute("title", "sort by this column (click again to reverse, a third time for the original order)");
      function sort() {
        var state = th.getAttribute("data-sort");
        var next = state === "none" ? "asc" : state === "asc" ? "desc" : "none";
        Array.prototype.forEach.call(row.cells, function (o) { o.setAttribute("data-sort", "none"); o.removeAttribute("aria-sort"); });
        th.setAttribute("data-sort", next);
        var rows = original.slice();
        if (next !== "none") {
          th.setAttribute("aria-sort", next === "asc" ? "ascending" : "descending");
          rows = rows.map(function (r, i) { return { r: r, i: i, k: cellKey(r.cells[col]) }; });
          rows.sort(function (a, b) {
            var c = compare(a.k, b.k);
            if (next === "desc") c = -c;
            return c !== 0 ? c : a.i - b.i;              // stable
          });
          rows = rows.map(function (o) { return o.r; });
        }
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  }

  function makeFilters(table) {
    var spec = table.getAttribute("data-filters");
    if (!spec || !table.tBodies.length) return;
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var keys = spec.split(",").map(function (s) { var i = s.indexOf(":"); return { key: s.slice(0, i), label: s.slice(i + 1) }; });
    var bar = document.createElement("div");
    bar.className = "linattn-filters";
    var selects = [];
    keys.forEach(function (k) {
      var values = [];
      rows.forEach(function (r) {
        var v = r.getAttribute("data-" + k.key);
        if (v !== null && values.indexOf(v) < 0) values.push(v);
      });
      var label = document.createElement("label");
      label.appendChild(document.createTextNode(k.label));
      var sel = document.createElement("select");
      sel.setAttribute("data-key", k.key);
      var all = document.createElement("option");
      all.value = ""; all.textContent = "all";
      sel.appendChild(all);
      values.forEach(function (v) {
        var o = document.createElement("option");
        o.value = v; o.textContent = v;
        sel.appendChild(o);
      });
      sel.addEventListener("change", apply);
      label.appendChild(sel);
      bar.appendChild(label);
      selects.push(sel);
    });
    var searchLabel = document.createElement("label");
    searchLabel.appendChild(document.createTextNode("search"));
    var search = document.createElement("input");
    search.type = "search";
    search.placeholder = "words in any column";
    search.addEventListener("input", apply);
    searchLabel.appendChild(search);
    bar.appendChild(searchLabel);
    var count = document.createElement("span");
    count.className = "count";
    bar.appendChild(count);
    var wrap = table.parentNode && table.parentNode.classList.contains("linattn-table-wrap") ? table.parentNode : table;
    wrap.parentNode.insertBefore(bar, wrap);

    function apply() {
      var words = search.value.toLowerCase().split(/\s+/).filter(function (w) { return w; });
      var shown = 0;
      rows.forEach(function (r) {
        var ok = selects.every(function (s) { return !s.value || r.getAttribute("data-" + s.getAttribute("data-key")) === s.value; });
        if (ok && words.length) {
          var text = (r.textContent || "").toLowerCase();
          ok = words.every(function (w) { return text.indexOf(w) >= 0; });
        }
        r.style.display = ok ? "" : "none";
        if (ok) shown += 1;
      });
      count.textContent = shown + " of " + rows.length + " rows";
    }
    apply();
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.linattn-sortable"), makeSortable);
    Array.prototype.forEach.call(document.querySelectorAll("table[data-filters]"), makeFilters);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
