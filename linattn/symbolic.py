"""Sympy derivations used by the Part I chapters (exact, small symbolic sizes).

- :func:`gram_kernel_forms` / :func:`verify_gram_kernel`: the linear kernel on attention
  features written four ways (the three-step chain sum_{k,l} (x_i.x_k)(x_k.x_l)(x_l.x_j),
  G^3, X C^2 X^T, (G X)(G X)^T) for an explicit n x d matrix of symbols.
- :func:`eigenvalue_cubing`: for a generic symmetric 2 x 2 G, every eigenvalue lambda of G
  makes G^3 - lambda^3 I singular, and G^3 = Q diag(lambda^3) Q^T for G = Q diag(lambda) Q^T.
- :func:`arccos0_derivation`: E[1[u > 0] 1[v > 0]] = (pi - theta) / (2 pi) for standard
  Gaussians u, v of correlation cos(theta), in polar coordinates.
- :func:`sensitivity_identity` / :func:`printed_bound_shape_error`: K(x_i + delta, x_j) -
  K(x_i, x_j) = delta^T C^2 x_j exactly, hence |.| <= eps ||C^2 x_j||_1; and the printed
  bound eps ||G x_j||_1 does not type-check when n != d.
- :func:`wrapped_latex` / :func:`equation`: a long sympy result as ``lhs = rhs`` broken over aligned lines
  (a display equation wider than the book's column would hide its end).
"""
from __future__ import annotations

import sympy as sp

from ._validation import check_int

__all__ = [
    "symbolic_data",
    "gram_kernel_forms",
    "verify_gram_kernel",
    "eigenvalue_cubing",
    "spectral_power_identity",
    "arccos0_derivation",
    "sensitivity_identity",
    "printed_bound_shape_error",
    "is_zero_matrix",
    "wrapped_latex",
    "equation",
]


def symbolic_data(n: int, d: int, name: str = "x") -> sp.Matrix:
    """An explicit n x d matrix of real symbols x_{i,j} (row i is the input x_i)."""
    n = check_int(n, "n")
    d = check_int(d, "d")
    return sp.Matrix(n, d, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def is_zero_matrix(M: sp.Matrix) -> bool:
    """True when every entry of ``M`` expands to 0."""
    return all(sp.expand(e) == 0 for e in M)


def gram_kernel_forms(n: int, d: int) -> dict[str, sp.Matrix]:
    """Four forms (n x n sympy matrices) of the linear kernel on linearized-attention features.

    ``chain``: K_ij = sum_{k,l} (x_i.x_k)(x_k.x_l)(x_l.x_j), the similarity chain
    i -> k -> l -> j; ``G^3``: (X X^T)^3; ``X C^2 X^T`` with C = X^T X (d x d); and
    ``(GX)(GX)^T``, the Gram of the features f_att(X) = G X. ``X`` is also returned.
    """
    X = symbolic_data(n, d)
    rows = [X.row(i) for i in range(n)]

    def dot(a, b):
        return (a * b.T)[0, 0]

    chain = sp.Matrix(
        n,
        n,
        lambda i, j: sum(
            dot(rows[i], rows[k]) * dot(rows[k], rows[l]) * dot(rows[l], rows[j])
            for k in range(n)
            for l in range(n)
        ),
    )
    G = X * X.T
    C = X.T * X
    GX = G * X
    return {"X": X, "chain": chain, "G^3": G**3, "X C^2 X^T": X * C**2 * X.T, "(GX)(GX)^T": GX * GX.T}


def verify_gram_kernel(n: int, d: int) -> bool:
    """True when chain = G^3 = X C^2 X^T = (G X)(G X)^T hold identically for n x d symbols."""
    f = gram_kernel_forms(n, d)
    ref = f["G^3"]
    return all(is_zero_matrix(f[k] - ref) for k in ("chain", "X C^2 X^T", "(GX)(GX)^T"))


def eigenvalue_cubing() -> dict[str, object]:
    """Eigenvalues of G^3 are the cubes of those of G, for a generic symmetric 2 x 2 G.

    Returns ``G`` = [[a, b], [b, c]], its eigenvalues ``eigs`` (closed form),
    ``dets``: det(G^3 - lambda^3 I) for each eigenvalue lambda (each expands to 0), and
    ``holds`` (all zero). The general statement follows from G = Q diag(lambda) Q^T:
    see :func:`spectral_power_identity`.
    """
    a, b, c = sp.symbols("a b c", real=True)
    G = sp.Matrix([[a, b], [b, c]])
    eigs = list(G.eigenvals().keys())
    G3 = G**3
    dets = [sp.simplify(sp.expand((G3 - lam**3 * sp.eye(2)).det())) for lam in eigs]
    return {"G": G, "eigs": eigs, "G^3": G3, "dets": dets, "holds": all(dv == 0 for dv in dets)}


def spectral_power_identity(p: int = 3) -> dict[str, object]:
    """G^p = Q diag(l1^p, l2^p) Q^T for G = Q diag(l1, l2) Q^T, Q a rotation by phi.

    Returns ``G``, ``lhs`` = G^p, ``rhs`` = Q diag(l^p) Q^T, ``holds`` (their difference
    simplifies to zero) and ``kappa`` = (l1 / l2)^p, the condition number of G^p when
    l1 >= l2 > 0.
    """
    p = check_int(p, "p")
    l1, l2 = sp.symbols("lambda_1 lambda_2", positive=True)
    phi = sp.Symbol("phi", real=True)
    Q = sp.Matrix([[sp.cos(phi), -sp.sin(phi)], [sp.sin(phi), sp.cos(phi)]])
    G = Q * sp.diag(l1, l2) * Q.T
    lhs = G**p
    rhs = Q * sp.diag(l1**p, l2**p) * Q.T
    holds = all(sp.simplify(sp.trigsimp(e)) == 0 for e in (lhs - rhs))
    return {"G": G, "lhs": lhs, "rhs": rhs, "holds": holds, "kappa": (l1 / l2) ** p}


def arccos0_derivation() -> dict[str, sp.Expr]:
    """E[1[u > 0] 1[v > 0]] for standard Gaussians u, v with correlation cos(theta), 0 < theta < pi.

    Write u = z_1, v = cos(theta) z_1 + sin(theta) z_2 with z ~ N(0, I_2) (so Var v = 1 and
    E[u v] = cos theta), and z = r (cos phi, sin phi). Then u > 0 iff |phi| < pi/2 and
    v = r cos(phi - theta) > 0 iff |phi - theta| < pi/2; the density is
    exp(-r^2 / 2) / (2 pi) r dr dphi. Returned: ``cov`` (E[u v]), ``var_v``, ``lower``,
    ``upper`` (the angular interval), ``radial`` (the r integral), ``result``
    (= (pi - theta) / (2 pi)) and ``ntk`` = cos(theta) * result, the NTK of the two-layer
    net in terms of theta (u = <x^, x^'> = cos theta).
    """
    theta = sp.Symbol("theta", positive=True)
    r = sp.Symbol("r", positive=True)
    phi = sp.Symbol("phi", real=True)
    z1, z2 = sp.symbols("z_1 z_2", real=True)
    u = z1
    v = sp.cos(theta) * z1 + sp.sin(theta) * z2
    density = sp.exp(-(z1**2 + z2**2) / 2) / (2 * sp.pi)

    def expect(expr):
        return sp.simplify(sp.integrate(expr * density, (z1, -sp.oo, sp.oo), (z2, -sp.oo, sp.oo)))

    cov = expect(u * v)
    var_v = expect(v**2)
    lower = sp.Max(-sp.pi / 2, theta - sp.pi / 2)  # sympy resolves this with theta > 0
    upper = sp.Min(sp.pi / 2, theta + sp.pi / 2)
    radial = sp.integrate(r * sp.exp(-(r**2) / 2) / (2 * sp.pi), (r, 0, sp.oo))
    result = sp.simplify(sp.integrate(radial, (phi, lower, upper)))
    return {
        "theta": theta,
        "cov": cov,
        "var_v": var_v,
        "lower": lower,
        "upper": upper,
        "radial": radial,
        "result": result,
        "ntk": sp.cos(theta) * result,
    }


def sensitivity_identity(d: int) -> dict[str, object]:
    """K(x_i + delta, x_j) - K(x_i, x_j) = delta^T C^2 x_j for K(x, x') = x^T C^2 x', C symmetric d x d.

    Returns the symbolic ``C`` (symmetric), ``delta``, ``x_i``, ``x_j``, the exact ``change``,
    ``linear`` = delta^T C^2 x_j, ``holds`` (change - linear expands to 0), ``v`` = C^2 x_j
    and ``worst`` = sum_k eps sign(v_k) v_k, which equals eps ||v||_1: the bound
    |delta^T v| <= ||delta||_inf ||v||_1 <= eps ||C^2 x_j||_1 is attained at
    delta = eps sign(v).
    """
    d = check_int(d, "d")
    C = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"c_{min(i, j) + 1}{max(i, j) + 1}", real=True))
    dl = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"delta_{i + 1}", real=True))
    xi = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"xi_{i + 1}", real=True))
    xj = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"xj_{i + 1}", real=True))
    eps = sp.Symbol("epsilon", positive=True)

    def K(a, b):
        return (a.T * C**2 * b)[0, 0]

    change = sp.expand(K(xi + dl, xj) - K(xi, xj))
    v = C**2 * xj
    linear = sp.expand((dl.T * v)[0, 0])
    worst = sum(eps * sp.sign(vk) * vk for vk in v)
    return {
        "C": C,
        "delta": dl,
        "x_i": xi,
        "x_j": xj,
        "eps": eps,
        "change": change,
        "linear": linear,
        "holds": sp.expand(change - linear) == 0,
        "v": v,
        "worst": worst,
    }


def printed_bound_shape_error(n: int = 5, d: int = 3) -> str:
    """The sympy ShapeError raised by the printed bound's product G x_j (G n x n, x_j in R^d).

    Returns the error message; an empty string would mean the product type-checks
    (only when n == d, which is why the typed bound uses C^2 x_j).
    """
    n = check_int(n, "n")
    d = check_int(d, "d")
    G = sp.MatrixSymbol("G", n, n)
    xj = sp.MatrixSymbol("x_j", d, 1)
    try:
        G * xj
    except sp.ShapeError as exc:
        return str(exc)
    return ""


def _top_level_breaks(tex: str) -> list[int]:
    """Positions of the binary + and - of ``tex`` outside braces (sympy writes them as " + ", " - ")."""
    depth, out = 0, []
    for k, ch in enumerate(tex):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and ch in "+-" and 0 < k < len(tex) - 1 and tex[k - 1] == " " and tex[k + 1] == " ":
            out.append(k)
    return out


def wrapped_latex(lhs: str, rhs, width: int = 70) -> str:
    """LaTeX for ``lhs = rhs`` in an ``aligned`` block, broken before a + or - so that each line holds
    at most about ``width`` characters of LaTeX (a rough proxy for its printed width).

    ``lhs`` is LaTeX; ``rhs`` a sympy expression (or matrix). Parentheses are written ``\\bigl(``/
    ``\\bigr)``, which, unlike ``\\left``/``\\right``, may open on one line and close on the next.
    """
    check_int(width, "width", minimum=10)
    tex = sp.latex(rhs)
    if isinstance(rhs, sp.Expr):
        num, den = sp.fraction(rhs)
        if den != 1 and isinstance(num, (sp.Add, sp.Mul)):  # 1/den times the numerator, which may break
            inner = sp.latex(num)
            tex = rf"\frac{{1}}{{{sp.latex(den)}}} \left({inner}\right)" if isinstance(num, sp.Add) else \
                rf"\frac{{1}}{{{sp.latex(den)}}}\, {inner}"
    for a, b in ((r"\left(", r"\bigl("), (r"\right)", r"\bigr)"), (r"\left[", r"\bigl["),
                 (r"\right]", r"\bigr]")):
        tex = tex.replace(a, b)
    cuts, start, lines = _top_level_breaks(tex), 0, []
    last = 0
    for k in cuts + [len(tex)]:
        if k - start > width:
            # break at the last + or - that keeps the line within width, unless that line would be
            # under half the width (a long unbreakable stretch follows): then break after it
            cut = last if last - start >= width // 2 else k
            if start < cut < len(tex):
                lines.append(tex[start:cut].strip())
                start = cut
        last = k
    lines.append(tex[start:].strip())
    body = f"{lhs} &= {lines[0]}" + "".join(rf" \\ &\quad {line}" for line in lines[1:])
    return rf"\begin{{aligned}} {body} \end{{aligned}}"


def equation(lhs: str, rhs, width: int = 70):
    """``IPython.display.Math`` of :func:`wrapped_latex`: a sympy result shown as mathematics that fits
    the book's column (the last expression of a cell, or ``display(...)``)."""
    from IPython.display import Math

    return Math(wrapped_latex(lhs, rhs, width))
