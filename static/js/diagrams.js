// Draws ```mermaid``` blocks (<pre class="mermaid"><code>source</code></pre>) as SVG.
// Loaded only on entries that have a diagram, after the vendored mermaid.min.js.
// Without JavaScript, or if drawing fails, the source stays on the page as text.
//
// The site's Content-Security-Policy has style-src 'self': the <style> element and the
// style="" attributes in Mermaid's SVG would be blocked. So the SVG is parsed aside, its
// <style> text goes into a constructed stylesheet and each style attribute is applied
// through CSSOM (element.style), which CSP allows. The drawing runs twice the first time:
// the second pass measures labels with the diagram's styles already in place.
(function () {
  "use strict";
  var mermaid = window.mermaid;
  var blocks = Array.prototype.slice.call(document.querySelectorAll("pre.mermaid"));
  if (!mermaid || !blocks.length || !("adoptedStyleSheets" in document) || !window.DOMParser) return;
  var root = document.documentElement;
  var MIN_WIDTH = 640;
  var sources = blocks.map(function (pre) { return pre.textContent; });
  var sheets = blocks.map(function () { return new CSSStyleSheet(); });
  document.adoptedStyleSheets = document.adoptedStyleSheets.concat(sheets);

  function isDark() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) return chosen === "dark";
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  // Mermaid's "base" theme, coloured like the site (see --bg, --text, --accent in site.css).
  var PALETTES = {
    light: {
      darkMode: false, background: "#ffffff", primaryColor: "#e6f0fb", primaryTextColor: "#1f2328",
      primaryBorderColor: "#0b5cad", secondaryColor: "#f6f8fa", tertiaryColor: "#ffffff", lineColor: "#57606a",
      textColor: "#1f2328", edgeLabelBackground: "#ffffff",
      attributeBackgroundColorOdd: "#ffffff", attributeBackgroundColorEven: "#f6f8fa"
    },
    dark: {
      darkMode: true, background: "#0d1117", primaryColor: "#14263b", primaryTextColor: "#e6edf3",
      primaryBorderColor: "#6cb6ff", secondaryColor: "#151b23", tertiaryColor: "#0d1117", lineColor: "#9ea8b3",
      textColor: "#e6edf3", edgeLabelBackground: "#0d1117",
      attributeBackgroundColorOdd: "#0d1117", attributeBackgroundColorEven: "#151b23"
    }
  };

  function configure() {
    var palette = PALETTES[isDark() ? "dark" : "light"];
    var variables = { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", fontSize: "15px" };
    Object.keys(palette).forEach(function (key) { variables[key] = palette[key]; });
    mermaid.initialize({
      startOnLoad: false,
      securityLevel: "strict",
      theme: "base",
      themeVariables: variables,
      htmlLabels: false
    });
  }

  // The SVG element of Mermaid's markup, with its <style> text moved into `sheet` and its
  // style attributes applied through CSSOM. Both are taken out of the markup before it is
  // parsed, so not even the inert parse trips the policy.
  function adopt(markup, sheet) {
    var css = "";
    markup = markup.replace(/<style>([\s\S]*?)<\/style>/g, function (_, text) { css += text; return ""; });
    markup = markup.replace(/<[a-zA-Z][^>]*>/g, function (tag) { return tag.replace(/ style="/g, " data-nexus-style=\""); });
    sheet.replaceSync(css.replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&amp;/g, "&"));
    var parsed = new DOMParser().parseFromString(markup, "text/html").querySelector("svg");
    if (!parsed) throw new Error("no svg in Mermaid's output");
    var svg = document.importNode(parsed, true);
    Array.prototype.forEach.call(svg.querySelectorAll("[data-nexus-style]"), function (el) {
      el.style.cssText = el.getAttribute("data-nexus-style");
      el.removeAttribute("data-nexus-style");
    });
    if (svg.hasAttribute("data-nexus-style")) {
      svg.style.cssText = svg.getAttribute("data-nexus-style");
      svg.removeAttribute("data-nexus-style");
    }
    return svg;
  }

  // While Mermaid lays a diagram out in the page, style="" attributes it sets go through
  // CSSOM too, so its measurements see them (and CSP reports nothing).
  function withStyleShim(work) {
    var proto = Element.prototype, original = proto.setAttribute;
    proto.setAttribute = function (name, value) {
      if (String(name).toLowerCase() === "style" && this.style) { this.style.cssText = value; return; }
      return original.apply(this, arguments);
    };
    var restore = function () { proto.setAttribute = original; };
    return work().then(function (result) { restore(); return result; }, function (error) { restore(); throw error; });
  }

  function drawOne(pre, i, passes) {
    var id = "nexus-diagram-" + i;  // Mermaid scopes its stylesheet to this id
    var attempt = function () {
      return withStyleShim(function () { return mermaid.render(id, sources[i]); })
        .then(function (result) { return adopt(result.svg, sheets[i]); });
    };
    var run = attempt();
    for (var n = 1; n < passes; n++) run = run.then(attempt);
    return run.then(function (svg) {
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "Diagram; its source text follows.");
      // Shrink to fit, but not below a legible size: narrower screens scroll sideways instead.
      var box = svg.viewBox && svg.viewBox.baseVal;
      if (box && box.width) svg.style.minWidth = Math.min(box.width, MIN_WIDTH) + "px";
      pre.textContent = "";
      pre.appendChild(svg);
      pre.setAttribute("data-processed", "true");
      if (pre.scrollWidth > pre.clientWidth) pre.setAttribute("tabindex", "0");
      showSource(pre, sources[i]);
    }).catch(function (error) {
      pre.removeAttribute("data-processed");
      if (window.console) console.warn("diagram not drawn:", error);
    });
  }

  // The source stays one click away (and readable by screen readers) under the drawing.
  function showSource(pre, source) {
    var next = pre.nextElementSibling;
    if (next && next.classList.contains("diagram-source")) return;
    var details = document.createElement("details");
    details.className = "diagram-source";
    var summary = document.createElement("summary");
    summary.textContent = "Diagram source";
    var code = document.createElement("pre");
    code.appendChild(document.createElement("code")).textContent = source;
    details.appendChild(summary);
    details.appendChild(code);
    pre.parentNode.insertBefore(details, pre.nextSibling);
  }

  var drawing = Promise.resolve();
  var drawn = false;
  function draw() {
    drawing = drawing.then(function () {
      configure();
      var passes = drawn ? 1 : 2;
      drawn = true;
      // One at a time: Mermaid keeps global state while it renders, and so does the style shim.
      return blocks.reduce(function (done, pre, i) {
        return done.then(function () { return drawOne(pre, i, passes); });
      }, Promise.resolve());
    });
    return drawing;
  }

  draw();
  // Redraw in the other palette when the theme toggle or the system setting changes.
  document.addEventListener("nexus:theme", draw);
  if (window.matchMedia) {
    var query = window.matchMedia("(prefers-color-scheme: dark)");
    if (query.addEventListener) query.addEventListener("change", function () { if (!root.getAttribute("data-theme")) draw(); });
  }
})();
