"""linattn.stats: Wilson and Katz intervals, bootstraps, Spearman trends."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.stats import norm

from linattn import stats as S


# --------------------------------------------------------------------------- Wilson


def test_wilson_known_values():
    lo, hi = S.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert S.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert S.wilson_interval(10, 10)[1] == 1.0
    # k=3, n=20 at 90%, by hand from the formula
    z, p, n = norm.ppf(0.95), 0.15, 20
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert S.wilson_interval(3, 20, 0.9) == pytest.approx((c - h, c + h), rel=1e-12)
    assert S.wilson_interval(np.int64(5), np.int64(10)) == S.wilson_interval(5, 10)


def test_wilson_coverage_by_simulation():
    rng = np.random.default_rng(1)
    p, n = 0.1, 50
    ks = rng.binomial(n, p, size=2000)
    cover = np.mean([lo <= p <= hi for lo, hi in (S.wilson_interval(int(k), n) for k in ks)])
    assert 0.92 <= cover <= 0.98


@pytest.mark.parametrize("args, exc, words", [
    ((11, 10), ValueError, "k must be at most n"),
    ((-1, 10), ValueError, "k must be at least 0"),
    ((0, 0), ValueError, "n must be at least 1"),
    ((2.0, 10), TypeError, "k must be an integer"),
    ((2, 10, 1.0), ValueError, "level must lie in (0.0, 1.0)"),
    ((2, 10, "high"), TypeError, "level must be a number"),
])
def test_wilson_bad_input(args, exc, words):
    with pytest.raises(exc) as info:
        S.wilson_interval(*args)
    assert words in str(info.value)


def test_pooled_rate():
    out = S.pooled_rate([3, 0, 5], [20, 20, 20])
    assert (out["k"], out["n"], out["rate"]) == (8, 60, 8 / 60)
    assert (out["lo"], out["hi"]) == S.wilson_interval(8, 60)
    with pytest.raises(ValueError, match="one count per group"):
        S.pooled_rate([1, 2], [10])
    with pytest.raises(ValueError, match=r"ks\[1\] must be at most ns\[1\]"):
        S.pooled_rate([1, 12], [10, 10])
    with pytest.raises(ValueError, match="sum\\(ns\\) = 0"):
        S.pooled_rate([0], [0])


# --------------------------------------------------------------------------- Katz


def test_rate_ratio_katz_by_hand():
    out = S.rate_ratio(10, 50, 5, 50)
    se = math.sqrt(1 / 10 - 1 / 50 + 1 / 5 - 1 / 50)
    z = norm.ppf(0.975)
    assert out["ratio"] == 2.0 and not out["corrected"]
    assert out["lo"] == pytest.approx(2.0 * math.exp(-z * se), rel=1e-12)
    assert out["hi"] == pytest.approx(2.0 * math.exp(z * se), rel=1e-12)
    assert out["lo"] == pytest.approx(0.7362, abs=1e-4) and out["hi"] == pytest.approx(5.4332, abs=1e-4)


def test_rate_ratio_haldane_correction():
    out = S.rate_ratio(4, 40, 0, 40)
    assert out["ratio"] == math.inf and out["corrected"]
    a1, m1, a2, m2 = 4.5, 40.5, 0.5, 40.5
    centre = math.log((a1 / m1) / (a2 / m2))
    se = math.sqrt(1 / a1 - 1 / m1 + 1 / a2 - 1 / m2)
    z = norm.ppf(0.975)
    assert (out["lo"], out["hi"]) == pytest.approx((math.exp(centre - z * se), math.exp(centre + z * se)), rel=1e-12)
    zero = S.rate_ratio(0, 30, 0, 30)
    assert math.isnan(zero["ratio"]) and zero["lo"] < 1 < zero["hi"]
    assert S.rate_ratio(0, 30, 3, 30)["ratio"] == 0.0


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_deterministic_and_contains_statistic():
    x = np.array([0.21, 0.35, 0.28, 0.40, 0.31, 0.25])
    a = S.bootstrap_ci(x, n_boot=4000, seed=7)
    assert a == S.bootstrap_ci(list(x), n_boot=4000, seed=7)
    assert a != S.bootstrap_ci(x, n_boot=4000, seed=8)
    assert a[0] < x.mean() < a[1] and x.min() <= a[0] and a[1] <= x.max()
    med = S.bootstrap_ci(x, np.median, n_boot=2000, seed=0)
    loop = S.bootstrap_ci(x, lambda v: float(np.median(v)), n_boot=2000, seed=0)
    assert med == loop  # the vectorised and the per-resample paths agree
    wide = S.bootstrap_ci(x, level=0.99, n_boot=4000, seed=7)
    assert wide[0] <= a[0] and a[1] <= wide[1]


def test_bootstrap_ci_nan_rule_and_bad_input():
    x = [1.0, 2.0, 3.0, 4.0]
    assert S.bootstrap_ci(x + [math.nan], n_boot=500) == S.bootstrap_ci(x, n_boot=500)
    with pytest.raises(ValueError, match="at least 2"):
        S.bootstrap_ci([1.0, math.nan])
    with pytest.raises(ValueError, match="one-dimensional"):
        S.bootstrap_ci([[1.0, 2.0]])
    with pytest.raises(ValueError, match="n_boot must be at least 1"):
        S.bootstrap_ci(x, n_boot=0)
    with pytest.raises(TypeError, match="stat must be a function"):
        S.bootstrap_ci(x, stat="mean")


def test_bootstrap_ratio_paired_and_independent():
    a = np.array([2.0, 2.2, 1.9, 2.4, 2.1])
    b = np.array([1.0, 1.2, 0.9, 1.1, 1.0])
    paired = S.bootstrap_ratio(a, b, paired=True, n_boot=3000, seed=1)
    indep = S.bootstrap_ratio(a, b, n_boot=3000, seed=1)
    assert paired["ratio"] == indep["ratio"] == pytest.approx(a.mean() / b.mean())
    for r in (paired, indep):
        assert r["lo"] < r["ratio"] < r["hi"]
    assert paired == S.bootstrap_ratio(a, b, paired=True, n_boot=3000, seed=1)
    # b moves with a seed by seed: pairing narrows the interval
    assert paired["hi"] - paired["lo"] < indep["hi"] - indep["lo"]
    # a pair with a NaN member is dropped as a pair
    nan_a = np.append(a, math.nan)
    assert S.bootstrap_ratio(nan_a, np.append(b, 5.0), paired=True, n_boot=500) == \
        S.bootstrap_ratio(a, b, paired=True, n_boot=500)
    with pytest.raises(ValueError, match="paired=True needs one b per a"):
        S.bootstrap_ratio(a, b[:3], paired=True)
    with pytest.raises(TypeError, match="paired must be True or False"):
        S.bootstrap_ratio(a, b, paired="yes")


# --------------------------------------------------------------------------- trends


def _frozen_width_trend(rows):
    """Verbatim from commit b0e466f, linattn/experiments.py (the module is being moved)."""
    from scipy.stats import spearmanr

    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["model"], r["distance"]), []).append((r["width"], float(r["value"])))
    out = []
    for (task, model, dist), pairs in groups.items():
        w = np.array([p[0] for p in pairs], float)
        v = np.array([p[1] for p in pairs], float)
        ok = np.isfinite(v)
        if ok.sum() < 3 or np.ptp(v[ok]) == 0 or np.ptp(w[ok]) == 0:
            rho, p = math.nan, math.nan
        else:
            res = spearmanr(w[ok], v[ok])
            rho, p = float(res.statistic), float(res.pvalue)
        out.append({"task": task, "model": model, "distance": dist, "rho": rho, "p": p, "n": int(ok.sum())})
    return out


def test_trend_by_matches_old_width_trend():
    rng = np.random.default_rng(5)
    rows = []
    for model in ("relu", "attn"):
        for width in (64, 128, 256, 512):
            for seed in range(3):
                rows.append(dict(task="c", model=model, width=width, seed=seed, distance="rising",
                                 value=float(width * (1 + 0.1 * rng.normal()))))
                rows.append(dict(task="c", model=model, width=width, seed=seed, distance="noise",
                                 value=float(rng.normal()) if seed != 2 else math.nan))
                rows.append(dict(task="c", model=model, width=width, seed=seed, distance="flat", value=1.0))
                rows.append(dict(task="c", model=model, width=width, seed=seed, distance="few",
                                 value=1.0 if width == 64 and seed < 2 else math.nan))
    new = S.trend_by(rows, ("task", "model", "distance"))
    old = _frozen_width_trend(rows)
    assert len(new) == len(old) == 8
    for a, b in zip(new, old):
        assert list(a) == list(b)
        for k in a:
            assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), (k, a, b)
    by_dist = {r["distance"]: r for r in new if r["model"] == "attn"}
    assert by_dist["rising"]["rho"] > 0.9 and by_dist["rising"]["n"] == 12
    assert math.isnan(by_dist["flat"]["rho"]) and by_dist["noise"]["n"] == 8 and by_dist["few"]["n"] == 2


def test_trend_rules():
    t = S.trend([1, 2, 3, 4], [10, 20, 30, 40])
    assert t["rho"] == pytest.approx(1.0) and t["n"] == 4 and t["p"] < 0.05
    t = S.trend([1, 2, 3, 4, 5], [5, 4, math.nan, 2, 1])
    assert t["rho"] == pytest.approx(-1.0) and t["n"] == 4
    assert math.isnan(S.trend([1, 2], [1, 2])["rho"])
    assert math.isnan(S.trend([1, 1, 1], [1, 2, 3])["p"])
    assert math.isnan(S.trend([1, 2, 3], [7, 7, 7])["rho"])
    assert S.trend([1, 2, 3, math.inf], [1, 2, 3, 4])["n"] == 3
    with pytest.raises(ValueError, match="x and y must pair up"):
        S.trend([1, 2, 3], [1, 2])
    with pytest.raises(TypeError, match="y\\[1\\]"):
        S.trend([1, 2], [1, "two"])
    with pytest.raises(ValueError, match="no field 'width'"):
        S.trend_by([{"g": 1, "value": 1.0}], "g")


def test_significant_direction():
    assert S.significant_direction(0.8, 0.001) == "rises"
    assert S.significant_direction(-0.8, 0.001) == "falls"
    assert S.significant_direction(0.8, 0.2) == "no trend"
    assert S.significant_direction(0.8, 0.04, alpha=0.01) == "no trend"
    assert S.significant_direction(math.nan, math.nan) == "no trend"
    with pytest.raises(ValueError, match="alpha must lie in"):
        S.significant_direction(0.5, 0.01, alpha=0)


def test_rate_difference_newcombe_by_hand():
    # Newcombe (1998), Table II, example (a): 56/70 - 48/80, method 10 gives 0.0524 to 0.3339
    out = S.rate_difference(56, 70, 48, 80)
    assert out["diff"] == pytest.approx(0.2)
    assert (out["lo"], out["hi"]) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_rate_difference_extremes_stay_in_range():
    out = S.rate_difference(0, 10, 10, 10)
    assert out["diff"] == -1 and -1 <= out["lo"] < out["hi"] < 0
    same = S.rate_difference(5, 10, 5, 10)
    assert same["lo"] < 0 < same["hi"] and same["lo"] == pytest.approx(-same["hi"])
    with pytest.raises(ValueError, match="k1"):
        S.rate_difference(11, 10, 1, 10)


@pytest.mark.parametrize("n", [3, 9, 27, 100])
def test_spearman_critical_is_where_the_p_value_crosses_alpha(n):
    rho = S.spearman_critical(n)
    t = lambda r: r * math.sqrt((n - 2) / (1 - r * r))  # scipy's statistic for spearmanr's p-value
    p = lambda r: 2 * scipy_stats.t.sf(t(r), n - 2)
    assert p(rho) == pytest.approx(0.05, rel=1e-9)
    assert p(rho * 0.99) > 0.05 > p(min(rho * 1.01, 0.999999))


def test_spearman_critical_agrees_with_trend():
    # on random orderings of nine points, |rho| >= the threshold exactly when trend's p < 0.05
    rng = np.random.default_rng(0)
    x, crit = np.arange(9.0), S.spearman_critical(9)
    seen = set()
    for _ in range(300):
        r = S.trend(x, rng.permutation(9).astype(float))
        assert (abs(r["rho"]) >= crit) == (r["p"] < 0.05)
        seen.add(r["p"] < 0.05)
    assert seen == {True, False}


def test_spearman_critical_rejects_bad_input():
    with pytest.raises(ValueError, match="n"):
        S.spearman_critical(2)
    with pytest.raises(ValueError, match="alpha"):
        S.spearman_critical(9, alpha=1.5)
