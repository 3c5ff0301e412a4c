"""The report page's one script: sorting and searching the sample table, in vanilla JavaScript.

It only reorders and hides the table's existing rows (no markup is written, no network), so the
page stays a static file that works from disk. Every `table.browse` names its search box, state
filter and row counter in data attributes. The page's address can preset them, so that a link
(and the browser test) can open a sorted, filtered view: `#samples?sort=chars&desc=1&q=word&state=kept`.
A header with `data-num` sorts numerically by its cells' `data-v` (empty = smallest).
"""

BROWSE_JS = r"""
(function () {
  var each = function (xs, f) { Array.prototype.forEach.call(xs, f); };
  each(document.querySelectorAll("table.browse"), function (t) {
    var body = t.tBodies[0], heads = t.tHead.rows[0].cells;
    var box = document.getElementById(t.dataset.search), state = document.getElementById(t.dataset.state);
    var count = document.getElementById(t.dataset.count);
    function filter() {
      var q = box.value.toLowerCase(), s = state.value, n = 0;
      each(body.rows, function (r) {
        var ok = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) && (!s || r.dataset.state === s);
        r.style.display = ok ? "" : "none";
        n += ok ? 1 : 0;
      });
      count.textContent = n;
    }
    function key(row, i, num) {
      var c = row.cells[i];
      if (!num) return c.textContent;
      var v = parseFloat(c.dataset.v);
      return isNaN(v) ? -Infinity : v;
    }
    function sort(i, desc) {
      var num = heads[i].hasAttribute("data-num"), rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, i, num), y = key(b, i, num);
        var c = num ? (x < y ? -1 : x > y ? 1 : 0) : x.localeCompare(y);
        return desc ? -c : c;
      });
      each(rows, function (r) { body.appendChild(r); });
      each(heads, function (h, j) { h.setAttribute("aria-sort", j === i ? (desc ? "descending" : "ascending") : "none"); });
    }
    each(heads, function (h, i) {
      h.addEventListener("click", function () { sort(i, h.getAttribute("aria-sort") === "ascending"); });
    });
    box.addEventListener("input", filter);
    state.addEventListener("change", filter);
    var hash = location.hash, at = hash.indexOf("?");
    var p = new URLSearchParams(at >= 0 ? hash.slice(at + 1) : "");
    if (p.get("q")) box.value = p.get("q");
    if (p.get("state") !== null) state.value = p.get("state");
    each(heads, function (h, i) { if (h.dataset.key === p.get("sort")) sort(i, p.get("desc") === "1"); });
    filter();
  });
})();
"""
