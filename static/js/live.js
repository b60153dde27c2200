// Development only (`make dev`): reload this page when an import changes what it shows.
// An entry page reloads when its own entry changed; every other page on any change.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script.getAttribute("data-events");
  var entry = script.getAttribute("data-entry");
  var shown = Number(script.getAttribute("data-generation"));

  function show(generation) {
    shown = generation;
    document.documentElement.setAttribute("data-live-generation", String(shown));  // for tests and curious eyes
  }

  function concerns(change) {
    return !entry || change.slugs.indexOf(entry) !== -1;
  }

  function connect() {
    var source = new EventSource(url);
    source.addEventListener("hello", function (event) {
      // A change made while the page loaded or the server restarted: this page may be behind.
      if (JSON.parse(event.data).generation > shown) location.reload();
      else show(shown);
    });
    source.addEventListener("change", function (event) {
      var change = JSON.parse(event.data);
      if (change.generation <= shown) return;
      if (concerns(change)) {
        source.close();
        location.reload();
      } else {
        show(change.generation);
      }
    });
    source.addEventListener("error", function () {
      // The browser retries by itself while the server is unreachable, but gives up on an
      // error answer (e.g. while the dev server restarts): then connect again.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
    });
  }

  connect();
})();
