/* linattn-search.js: search results whose snippets read as text, not TeX.
   Sphinx builds each result's snippet from the text of the page it found, where formulas are still
   MathJax's TeX source ("\(\kappa(G)^3\)"). Before Sphinx's search runs, this wraps
   Search.htmlToText so that every formula becomes plain text ("κ(G)^3"). Plain ES5, offline; on
   pages without Sphinx's search it does nothing. */
(function () {
  "use strict";

  var SYMBOLS = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", zeta: "ζ", eta: "η",
    theta: "θ", vartheta: "θ", iota: "ι", kappa: "κ", lambda: "λ", mu: "μ", nu: "ν", xi: "ξ", pi: "π",
    rho: "ρ", sigma: "σ", tau: "τ", upsilon: "υ", phi: "φ", varphi: "φ", chi: "χ", psi: "ψ", omega: "ω",
    Gamma: "Γ", Delta: "Δ", Theta: "Θ", Lambda: "Λ", Xi: "Ξ", Pi: "Π", Sigma: "Σ", Phi: "Φ", Psi: "Ψ",
    Omega: "Ω", infty: "∞", le: "≤", leq: "≤", ge: "≥", geq: "≥", ll: "≪", gg: "≫", approx: "≈",
    neq: "≠", ne: "≠", sim: "~", propto: "∝", cdot: "·", times: "×", pm: "±", top: "ᵀ", to: "→",
    rightarrow: "→", Rightarrow: "⇒", mapsto: "↦", in: "∈", subset: "⊂", sum: "Σ", prod: "Π",
    sqrt: "√", partial: "∂", nabla: "∇", ell: "ℓ", "|": "‖", lVert: "‖", rVert: "‖", Vert: "‖",
    lvert: "|", rvert: "|", mid: "|", langle: "⟨", rangle: "⟩", ldots: "…", dots: "…", cdots: "⋯",
    quad: " ", qquad: " ", ",": " ", ";": " ", ":": " ", "!": "", "{": "{", "}": "}", "%": "%"
  };
  var DROPPED = /\\(left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr|displaystyle|nonumber|label\{[^}]*\})/g;
  var FONTS = /\\(mathrm|mathbf|mathit|mathsf|mathcal|mathbb|boldsymbol|operatorname|text|textrm|textbf|textit|mbox|hat|tilde|bar|overline)\s*\{([^{}]*)\}/g;

  /** Plain text for a TeX formula: "\(\|\Theta_m\|_{op}\)" -> "‖Θ_m‖_op". */
  function texToText(tex) {
    var s = String(tex).replace(/^\s*(\\\(|\\\[|\$\$|\$)/, "").replace(/(\\\)|\\\]|\$\$|\$)\s*$/, "");
    s = s.replace(/\\(begin|end)\{[^}]*\}/g, " ").replace(/\\\\/g, " ").replace(/&/g, " ");
    s = s.replace(DROPPED, "");
    for (var i = 0; i < 3; i++) {               // nested groups, innermost first
      s = s.replace(/([\^_])\{([^{}]*)\}/g, "$1$2");  // x^{24} -> x^24
      s = s.replace(FONTS, "$2");
      s = s.replace(/\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}/g, "($1)/($2)");
    }
    s = s.replace(/\\([A-Za-z]+|[|,;:!{}%])/g, function (m, name) {
      return Object.prototype.hasOwnProperty.call(SYMBOLS, name) ? SYMBOLS[name] : name;
    });
    s = s.replace(/\^\s*ᵀ/g, "ᵀ").replace(/[{}]/g, "");
    return s.replace(/\s+/g, " ").trim();
  }

  /** The HTML of a page with each formula (.math) replaced by its plain text. */
  function mathAsText(htmlString) {
    var doc = new DOMParser().parseFromString(htmlString, "text/html");
    Array.prototype.forEach.call(doc.querySelectorAll(".math"), function (el) {
      el.textContent = texToText(el.textContent);
    });
    return doc.documentElement.outerHTML;
  }

  function install() {
    if (typeof Search === "undefined" || !Search.htmlToText || Search.htmlToText.linattn) return;
    var original = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      return original(mathAsText(htmlString), anchor);
    };
    Search.htmlToText.linattn = true;
  }

  if (typeof document !== "undefined") {
    install();
    document.addEventListener("DOMContentLoaded", install);
  }
  if (typeof module !== "undefined" && module.exports) module.exports = { texToText: texToText };
})();
