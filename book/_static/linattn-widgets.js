/* linattn-widgets.js: the book's widgets in the static HTML, offline, no library.
   Plain ES5. A widget made by linattn.interact holds one <div class="linattn-widget-state"> per
   precomputed state, keyed by the indices of its controls' values ("2,0"); moving a control shows
   the state it names. Without JavaScript the initial state is shown. */
(function () {
  "use strict";

  function wire(box) {
    var inputs = box.querySelectorAll(".linattn-widget-controls input, .linattn-widget-controls select");
    var states = box.querySelectorAll(".linattn-widget-state");
    function update() {
      var key = [];
      Array.prototype.forEach.call(inputs, function (el) {
        key.push(el.value);
        if (el.type === "range") {
          var labels = JSON.parse(el.getAttribute("data-labels"));
          var out = el.parentNode.querySelector("output");
          if (out) out.textContent = labels[+el.value];
        }
      });
      key = key.join(",");
      Array.prototype.forEach.call(states, function (s) {
        var show = s.getAttribute("data-key") === key;
        if (show) s.removeAttribute("hidden"); else s.setAttribute("hidden", "");
        if (show && window.MathJax && window.MathJax.typesetPromise) window.MathJax.typesetPromise([s]);
      });
    }
    Array.prototype.forEach.call(inputs, function (el) {
      el.addEventListener("input", update);
      el.addEventListener("change", update);
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".linattn-widget"), wire);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
