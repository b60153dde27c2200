// Starts Swagger UI on /api/docs. The document's URL comes from a data- attribute, so the page
// needs no inline script (the site's Content-Security-Policy allows scripts from files only).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || !window.SwaggerUIBundle) return;
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    tryItOutEnabled: true,
    validatorUrl: null // never send the document to an outside validator
  });
})();
