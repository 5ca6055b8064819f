// Renders each chart's Vega-Lite specification (in the <script type="application/json"> beside
// it) with vega-embed; the SVG drawn at build time stays as the fallback if anything fails.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (typeof vegaEmbed !== "function") return;
  document.querySelectorAll("figure.chart").forEach(function (figure) {
    var source = document.getElementById(figure.dataset.spec);
    var target = figure.querySelector(".vega");
    if (!source || !target) return;
    var spec;
    try { spec = JSON.parse(source.textContent); } catch (e) { return; }
    // Norwegian numbers: decimal comma, a space between thousands.
    var locale = { decimal: ",", thousands: "\u00a0", grouping: [3], currency: ["", " kr"] };
    vegaEmbed(target, spec, { actions: false, renderer: "svg", formatLocale: locale })
      .then(function () { figure.classList.add("rendered"); })
      .catch(function () { figure.classList.add("failed"); });
  });
});
