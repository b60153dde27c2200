// Apply the remembered colour theme before first paint (no inline script: the CSP forbids it).
(function () {
  try {
    var theme = localStorage.getItem("nexus-theme");
    if (theme === "dark" || theme === "light") document.documentElement.setAttribute("data-theme", theme);
  } catch (e) { /* storage disabled: follow the system setting */ }
})();
