// The course site's search: every chapter's headings, prose and code, searched in the page
// (the index is window.COURSE_SEARCH_INDEX from search_index.js; nothing is fetched).
(function () {
  "use strict";
  var input = document.getElementById("course-search-input");
  var list = document.getElementById("course-search-results");
  var index = window.COURSE_SEARCH_INDEX || [];
  if (!input || !list) return;

  function words(query) {
    return query.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; });
  }

  function count(text, word) {
    var n = 0, at = text.indexOf(word);
    while (at !== -1 && n < 20) { n += 1; at = text.indexOf(word, at + word.length); }
    return n;
  }

  function search(query) {
    var terms = words(query);
    if (!terms.length) return [];
    var hits = [];
    index.forEach(function (entry) {
      var title = (entry.c + " " + entry.s).toLowerCase();
      var text = entry.x.toLowerCase();
      var score = 0;
      for (var i = 0; i < terms.length; i++) {
        var inTitle = title.indexOf(terms[i]) !== -1;
        var n = count(text, terms[i]);
        if (!inTitle && !n) return;
        score += (inTitle ? 10 : 0) + Math.min(n, 5);
      }
      hits.push({ entry: entry, score: score });
    });
    hits.sort(function (a, b) { return b.score - a.score; });
    return hits.slice(0, 15);
  }

  function snippet(text, term) {
    var at = text.toLowerCase().indexOf(term);
    var start = Math.max(0, at - 60);
    var piece = (start > 0 ? "… " : "") + text.slice(start, start + 160) + (text.length > start + 160 ? " …" : "");
    var span = document.createElement("span");
    span.className = "course-hit-text";
    var lower = piece.toLowerCase(), pos = 0, found;
    while (term && (found = lower.indexOf(term, pos)) !== -1) {
      span.appendChild(document.createTextNode(piece.slice(pos, found)));
      var mark = document.createElement("mark");
      mark.textContent = piece.slice(found, found + term.length);
      span.appendChild(mark);
      pos = found + term.length;
    }
    span.appendChild(document.createTextNode(piece.slice(pos)));
    return span;
  }

  function show() {
    var query = input.value.trim();
    list.textContent = "";
    if (!query) { list.hidden = true; return; }
    var hits = search(query);
    var first = words(query)[0];
    if (!hits.length) {
      var none = document.createElement("li");
      none.className = "course-no-hit";
      none.textContent = "No section mentions “" + query + "”.";
      list.appendChild(none);
    }
    hits.forEach(function (hit) {
      var e = hit.entry;
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = e.p + (e.a ? "#" + encodeURIComponent(e.a) : "");
      a.className = "course-hit";
      var title = document.createElement("span");
      title.className = "course-hit-title";
      title.textContent = e.c + (e.s && e.s !== e.c ? " › " + e.s : "");
      a.appendChild(title);
      a.appendChild(snippet(e.x, first));
      li.appendChild(a);
      list.appendChild(li);
    });
    list.hidden = false;
  }

  input.addEventListener("input", show);
  input.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { input.value = ""; show(); }
    if (event.key === "Enter") {
      var first = list.querySelector("a.course-hit");
      if (first) window.location.href = first.href;
    }
  });
  document.addEventListener("click", function (event) {
    if (!list.contains(event.target) && event.target !== input) list.hidden = true;
  });
}());
