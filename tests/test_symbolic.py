"""Tests of linattn.symbolic: each derivation holds, and agrees with a numeric evaluation."""
import math

import pytest
import sympy as sp
import torch

from linattn.kernels import arccos0, gram_cubed, sensitivity_bound
from linattn.symbolic import (
    arccos0_derivation,
    eigenvalue_cubing,
    gram_kernel_forms,
    is_zero_matrix,
    printed_bound_shape_error,
    sensitivity_identity,
    spectral_power_identity,
    symbolic_data,
    verify_gram_kernel,
)


def test_symbolic_data_shape_and_errors():
    X = symbolic_data(3, 2)
    assert X.shape == (3, 2) and all(s.is_real for s in X)
    with pytest.raises(ValueError):
        symbolic_data(0, 2)


@pytest.mark.parametrize("n, d", [(2, 3), (3, 2)])
def test_gram_kernel_identity(n, d):
    assert verify_gram_kernel(n, d)


def test_gram_kernel_forms_agree_with_numerics():
    forms = gram_kernel_forms(3, 2)
    X = forms["X"]
    g = torch.Generator().manual_seed(0)
    vals = torch.randint(-3, 4, (3, 2), generator=g).to(torch.float64)
    subs = {X[i, j]: int(vals[i, j]) for i in range(3) for j in range(2)}
    chain = torch.tensor([[float(e.subs(subs)) for e in row] for row in forms["chain"].tolist()], dtype=torch.float64)
    torch.testing.assert_close(chain, gram_cubed(vals), rtol=0, atol=0)


def test_is_zero_matrix_detects_nonzero():
    x = sp.Symbol("x")
    assert is_zero_matrix(sp.Matrix([[x - x]])) and not is_zero_matrix(sp.Matrix([[x]]))


def test_eigenvalue_cubing():
    r = eigenvalue_cubing()
    assert r["holds"] and len(r["eigs"]) == 2
    a, b, c = sp.symbols("a b c", real=True)
    vals = {a: 2, b: 1, c: 3}
    G = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    ev3 = torch.linalg.eigvalsh(torch.linalg.matrix_power(G, 3))
    cubes = sorted(float(e.subs(vals)) ** 3 for e in r["eigs"])
    torch.testing.assert_close(ev3, torch.tensor(cubes, dtype=torch.float64), rtol=1e-12, atol=0)


def test_spectral_power_identity():
    r = spectral_power_identity(3)
    assert r["holds"]
    l1, l2 = sp.symbols("lambda_1 lambda_2", positive=True)
    assert sp.simplify(r["kappa"] - l1**3 / l2**3) == 0
    with pytest.raises(ValueError):
        spectral_power_identity(0)


def test_arccos0_derivation_matches_closed_form_and_numerics():
    r = arccos0_derivation()
    th = r["theta"]
    assert sp.simplify(r["result"] - (sp.pi - th) / (2 * sp.pi)) == 0
    assert sp.simplify(r["cov"] - sp.cos(th)) == 0 and sp.simplify(r["var_v"] - 1) == 0
    assert r["radial"] == 1 / (2 * sp.pi)
    for t in (0.3, 1.0, 2.5):
        x = torch.tensor([[1.0, 0.0], [math.cos(t), math.sin(t)]], dtype=torch.float64)
        assert math.isclose(float(r["result"].subs(th, t)), float(arccos0(x)[0, 1]), rel_tol=1e-12)
        assert math.isclose(float(r["ntk"].subs(th, t)), math.cos(t) * (math.pi - t) / (2 * math.pi), rel_tol=1e-12)


def test_sensitivity_identity_and_attained_bound():
    r = sensitivity_identity(3)
    assert r["holds"]
    # numerically: the worst delta = eps sign(C^2 x_j) attains eps ||C^2 x_j||_1 (kernels.sensitivity_bound)
    g = torch.Generator().manual_seed(1)
    keys = torch.randint(-2, 3, (5, 3), generator=g).to(torch.float64)
    xj = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    C = keys.T @ keys
    subs = {r["eps"]: sp.Rational(3, 10)}
    for i in range(3):
        subs[r["x_j"][i]] = sp.nsimplify(float(xj[i]))
        for j in range(3):
            subs[r["C"][i, j]] = int(C[i, j])
    worst = float(r["worst"].subs(subs))
    assert math.isclose(worst, sensitivity_bound(xj, 0.3, X_keys=keys), rel_tol=1e-12)


def test_printed_bound_is_ill_typed_unless_n_equals_d():
    assert "not aligned" in printed_bound_shape_error(5, 3)
    assert printed_bound_shape_error(4, 4) == ""


def test_wrapped_latex_breaks_a_long_sum_and_keeps_it_equal():
    from linattn import symbolic

    g = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"g_{min(i, j) + 1}{max(i, j) + 1}"))
    chain = sp.expand(sum(g[0, k] * g[k, l] * g[l, 1] for k in range(3) for l in range(3)))
    tex = symbolic.wrapped_latex("K_{12}", chain, width=70)
    assert tex.startswith(r"\begin{aligned} K_{12} &= ") and tex.endswith(r"\end{aligned}")
    lines = tex[len(r"\begin{aligned} "):-len(r" \end{aligned}")].split(r" \\ ")
    assert len(lines) == 3 and all(len(line) < 90 for line in lines)
    rejoined = " ".join([lines[0].removeprefix("K_{12} &= ")] + [ln.removeprefix(r"&\quad ") for ln in lines[1:]])
    assert rejoined == sp.latex(chain)                     # every term, once, in order


def test_wrapped_latex_opens_a_parenthesis_on_one_line_and_closes_it_on_another():
    from linattn import symbolic

    a, b, c, x = sp.symbols("a b c x")
    tex = symbolic.wrapped_latex("y", sp.factor((a + b - c) ** 2 * (x - 1)), width=10)
    assert r"\left" not in tex and tex.count(r"\bigl(") == tex.count(r"\bigr)") == 2
    assert tex.count(r"\\ &\quad") >= 2
    with pytest.raises(ValueError):
        symbolic.wrapped_latex("y", x, width=3)


def test_wrapped_latex_takes_a_denominator_out_so_the_numerator_can_break():
    from linattn import symbolic

    x, y, z = sp.symbols("x y z")
    expr = sp.factor((x + y) * (x**4 + 2 * x**2 * y**2 + y**4 + z**4 + x * y * z**2) / 8)
    tex = symbolic.wrapped_latex("E", expr, width=30)
    assert tex.startswith(r"\begin{aligned} E &= \frac{1}{8}") and tex.count(r"\\ &\quad") >= 2
