/* Draws every plotly figure on the page. A figure is a <script type="application/json" id="X">
   holding {"data", "layout"} and a <div data-figure="X"> to draw it in (no inline scripts: CSP). */
(function () {
  "use strict";

  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function draw(target) {
    var source = document.getElementById(target.dataset.figure);
    if (!source || !window.Plotly) { return; }
    var figure = JSON.parse(source.textContent);
    window.Plotly.newPlot(target, figure.data, figure.layout, CONFIG).then(function () {
      target.dataset.drawn = "true";
    });
    // Nodes that carry a link in customdata (the ownership graph) navigate on click.
    target.on("plotly_click", function (event) {
      var point = event && event.points && event.points[0];
      var href = point && point.customdata;
      if (typeof href === "string" && href.charAt(0) === "/") { window.location.assign(href); }
    });
  }

  function drawAll() {
    document.querySelectorAll("[data-figure]").forEach(draw);
  }

  window.SupervisionFigures = { draw: draw };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
