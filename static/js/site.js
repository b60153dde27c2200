// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  var root = document.documentElement;

  // Theme toggle: remembers an explicit choice; otherwise the system setting applies.
  var toggle = document.querySelector("[data-theme-toggle]");
  var systemDark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  function isDark() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) return chosen === "dark";
    return Boolean(systemDark && systemDark.matches);
  }
  function showState() { if (toggle) toggle.setAttribute("aria-pressed", String(isDark())); }
  if (toggle) {
    toggle.hidden = false;
    showState();
    toggle.addEventListener("click", function () {
      var next = isDark() ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("nexus-theme", next); } catch (e) { /* not remembered */ }
      showState();
      document.dispatchEvent(new CustomEvent("nexus:theme", { detail: next }));
    });
    if (systemDark && systemDark.addEventListener) systemDark.addEventListener("change", showState);
  }

  // Wide code blocks and tables scroll sideways: make them reachable with the keyboard.
  function markScrollable() {
    document.querySelectorAll(".prose pre, .prose table").forEach(function (el) {
      if (el.scrollWidth > el.clientWidth + 1) {
        if (!el.hasAttribute("tabindex")) el.setAttribute("tabindex", "0");
      } else if (el.getAttribute("tabindex") === "0") {
        el.removeAttribute("tabindex");
      }
    });
  }
  markScrollable();
  var resizeTimer = null;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(markScrollable, 200); });

  // "/" focuses the search box unless the user is typing somewhere.
  var input = document.getElementById("site-search");
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var el = document.activeElement;
    if (el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable)) return;
    if (input) { event.preventDefault(); input.focus(); input.select(); }
  });

  // As-you-type title suggestions from /api/suggest (a combobox with a listbox popup).
  var list = document.getElementById("search-suggestions");
  var status = document.getElementById("suggest-status");
  if (!input || !list || !window.fetch) return;
  // With this script the box becomes a combobox (ARIA 1.2) that owns the suggestion list.
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-controls", list.id);
  input.setAttribute("aria-expanded", "false");
  var kinds = { technology: "Technology", concept: "Concept", challenge: "Challenge", practice: "Practice" };
  var timer = null, active = -1, lastQuery = "", controller = null;
  function announce(text) { if (status) status.textContent = text; }
  function close() {
    list.hidden = true; list.innerHTML = ""; active = -1; lastQuery = "";
    input.setAttribute("aria-expanded", "false"); input.removeAttribute("aria-activedescendant");
  }
  function render(items) {
    list.innerHTML = "";
    items.forEach(function (item, i) {
      var li = document.createElement("li");
      li.id = "suggestion-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      var a = document.createElement("a");
      a.href = item.url;
      a.tabIndex = -1;
      var title = document.createElement("span");
      title.textContent = item.title;
      a.appendChild(title);
      if (item.kind && kinds[item.kind]) {
        var hint = document.createElement("span");
        hint.className = "kind-hint";
        hint.textContent = kinds[item.kind];
        a.appendChild(hint);
      }
      li.appendChild(a);
      list.appendChild(li);
    });
    active = -1;
    input.removeAttribute("aria-activedescendant");
    list.hidden = items.length === 0;
    input.setAttribute("aria-expanded", String(items.length > 0));
    announce(items.length ? items.length + (items.length === 1 ? " suggestion" : " suggestions") + ": use the up and down arrow keys" : "");
  }
  function highlight(index) {
    var options = list.querySelectorAll("[role=option]");
    if (!options.length) return;
    active = (index + options.length) % options.length;
    options.forEach(function (o, i) { o.setAttribute("aria-selected", String(i === active)); });
    input.setAttribute("aria-activedescendant", options[active].id);
    options[active].scrollIntoView({ block: "nearest" });
  }
  input.addEventListener("input", function () {
    var q = input.value.trim();
    clearTimeout(timer);
    if (q.length < 2) { close(); return; }
    timer = setTimeout(function () {
      if (q === lastQuery) return;
      lastQuery = q;
      if (controller) controller.abort();
      controller = window.AbortController ? new AbortController() : null;
      fetch(input.dataset.suggestUrl + "?q=" + encodeURIComponent(q), controller ? { signal: controller.signal } : {})
        .then(function (r) { return r.ok ? r.json() : { suggestions: [] }; })
        .then(function (data) { if (input.value.trim() === q && document.activeElement === input) render(data.suggestions || []); })
        .catch(function () { /* offline or aborted: the form still works */ });
    }, 120);
  });
  input.addEventListener("keydown", function (event) {
    if (list.hidden) return;
    if (event.key === "ArrowDown") { event.preventDefault(); highlight(active + 1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); highlight(active - 1); }
    else if (event.key === "Escape") { event.preventDefault(); close(); }
    else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      window.location.href = list.querySelectorAll("[role=option] a")[active].href;
    }
  });
  // Keep focus in the box while a suggestion is clicked, so the list stays open for the click.
  list.addEventListener("mousedown", function (event) { event.preventDefault(); });
  input.addEventListener("blur", function () { setTimeout(close, 150); });
})();
