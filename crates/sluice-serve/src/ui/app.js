// Small enhancements; every page reads the same without them.
(function () {
  "use strict";
  // Times as the reader's local time, with UTC kept in the tooltip.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when.getTime())) {
      el.title = el.getAttribute("datetime");
      el.textContent = when.toLocaleString();
    }
  });
  // A filter box above tables marked data-filter.
  document.querySelectorAll("table[data-filter]").forEach(function (table) {
    var input = document.createElement("input");
    input.type = "search";
    input.className = "filter";
    input.placeholder = "filter rows";
    input.setAttribute("aria-label", "filter rows");
    table.parentNode.insertBefore(input, table);
    input.addEventListener("input", function () {
      var needle = input.value.toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (row) {
        row.style.display = row.textContent.toLowerCase().indexOf(needle) >= 0 ? "" : "none";
      });
    });
  });
  // Refresh pages that ask for it (data-refresh seconds on <body>) while the tab is visible.
  var every = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (every > 0) {
    setInterval(function () {
      if (document.visibilityState === "visible") {
        window.location.reload();
      }
    }, every * 1000);
  }
})();
