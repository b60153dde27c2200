// Draws ```mermaid``` blocks (<pre class="mermaid"><code>source</code></pre>) as SVG.
// Loaded only on entries that have a diagram, after the vendored mermaid.min.js.
// Without JavaScript, or if drawing fails, the source stays on the page as text.
//
// The site's Content-Security-Policy has style-src 'self' and script-src 'self': a <style>
// element, a style="" attribute or an onclick="" attribute reaches the policy (and is reported
// as a violation) as soon as markup holding it is parsed, even aside (DOMParser, <template>,
// DOMPurify, which Mermaid runs on its output). So while Mermaid draws, no such markup is
// parsed or inserted (see `guarded`): styles go through CSSOM (element.style) and into a
// constructed stylesheet, which CSP allows, and the one inline handler Mermaid writes (the
// links menu of a sequence diagram's actor) becomes a listener. The drawing runs twice the
// first time: the second pass measures labels with the diagram's styles already in place.
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

  // Markup with its <style> elements taken out (their text pushed onto `css`) and its style=""
  // and on*="" attributes renamed data-nexus-style and data-nexus-on*: nothing the policy checks.
  var TAG_RE = /<[a-zA-Z][^\s\/>]*(?:[^>"']|"[^"]*"|'[^']*')*>/g;
  var ATTRIBUTE_RE = /(\s)([^\s=\/>"']+)(?=\s*=)/g;
  function defuse(markup, css) {
    markup = String(markup).replace(/<style\b[^>]*>([\s\S]*?)<\/style>/gi, function (_, text) {
      css.push(text.replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&amp;/g, "&"));
      return "";
    });
    return markup.replace(TAG_RE, function (tag) {
      return tag.replace(ATTRIBUTE_RE, function (all, space, name) {
        return /^(style|on[a-z]+)$/i.test(name) ? space + "data-nexus-" + name : all;
      });
    });
  }

  // Runs `work` (a promise) with the DOM methods Mermaid and its DOMPurify use defused: style
  // attributes set through CSSOM, handler attributes renamed, markup defused before it is parsed,
  // <style> elements kept out of the document. Their CSS text is pushed onto `css`.
  function guarded(css, work) {
    var element = Element.prototype, node = Node.prototype, parser = DOMParser.prototype;
    var saved = [];
    function replace(owner, name, make) {
      var descriptor = Object.getOwnPropertyDescriptor(owner, name);
      saved.push([owner, name, descriptor]);
      Object.defineProperty(owner, name, make(descriptor));
    }
    function method(owner, name, wrap) {
      replace(owner, name, function (d) { return { value: wrap(d.value), writable: true, configurable: true }; });
    }
    method(element, "setAttribute", function (original) {
      return function (name, value) {
        name = String(name);
        if (name.toLowerCase() === "style" && this.style) { this.style.cssText = value; return; }
        if (/^on/i.test(name)) name = "data-nexus-" + name;
        return original.call(this, name, value);
      };
    });
    method(parser, "parseFromString", function (original) {
      return function (markup, type) { return original.call(this, defuse(markup, css), type); };
    });
    method(element, "insertAdjacentHTML", function (original) {
      return function (where, markup) { return original.call(this, where, defuse(markup, css)); };
    });
    ["innerHTML", "outerHTML"].forEach(function (name) {
      replace(element, name, function (d) {
        return { get: d.get, set: function (markup) { d.set.call(this, defuse(markup, css)); }, configurable: true };
      });
    });
    ["appendChild", "insertBefore"].forEach(function (name) {
      method(node, name, function (original) {
        return function (child) {
          if (child && child.nodeType === 1 && child.localName === "style") { css.push(child.textContent); return child; }
          return original.apply(this, arguments);
        };
      });
    });
    var restore = function () {
      saved.reverse().forEach(function (entry) { Object.defineProperty(entry[0], entry[1], entry[2]); });
    };
    return work().then(function (result) { restore(); return result; }, function (error) { restore(); throw error; });
  }

  // The SVG element of Mermaid's (defused) markup, its CSS in `sheet`, its style attributes
  // applied through CSSOM and its actors' links menus opened by listeners.
  function adopt(markup, css, sheet) {
    markup = defuse(markup, css);
    sheet.replaceSync(css.join("\n"));
    var parsed = new DOMParser().parseFromString(markup, "text/html").querySelector("svg");
    if (!parsed) throw new Error("no svg in Mermaid's output");
    var svg = document.importNode(parsed, true);
    [svg].concat(Array.prototype.slice.call(svg.querySelectorAll("*"))).forEach(function (el) {
      Array.prototype.slice.call(el.attributes).forEach(function (attribute) {
        var name = attribute.name;
        if (name === "data-nexus-style") el.style.cssText = attribute.value;
        else if (name === "data-nexus-onclick") openMenuOnClick(svg, el, attribute.value);
        if (name.indexOf("data-nexus-") === 0) el.removeAttribute(name);
      });
    });
    return svg;
  }

  // A sequence diagram's actor with links toggles its menu: Mermaid writes that as an inline
  // onclick (`document.getElementById('actor0_popup')…`); here it is a listener, keyboard too.
  function openMenuOnClick(svg, el, handler) {
    var match = /getElementById\('([\w-]+)'\)/.exec(handler);
    var menu = match && svg.querySelector("#" + match[1]);
    if (!menu) return;
    var toggle = function () {
      var open = menu.style.display !== "block";
      menu.style.display = open ? "block" : "none";
      el.setAttribute("aria-expanded", String(open));
    };
    el.setAttribute("tabindex", "0");
    el.setAttribute("role", "button");
    el.setAttribute("aria-expanded", "false");
    el.setAttribute("aria-controls", match[1]);
    el.addEventListener("click", toggle);
    el.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); }
    });
  }

  function drawOne(pre, i, passes) {
    var id = "nexus-diagram-" + i;  // Mermaid scopes its stylesheet to this id
    var attempt = function () {
      var css = [];
      return guarded(css, function () { return mermaid.render(id, sources[i]); })
        .then(function (result) { return adopt(result.svg, css, sheets[i]); });
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
      // One at a time: Mermaid keeps global state while it renders, and so does `guarded`.
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
